"""Author-year labels in the bibliography, to match the author-year citations in the text.

The chapters cite with ``{cite}`bishop2006``` and the configuration asks for author-year
citations ("Bishop, 2006"). pybtex's styles label the list itself with "[Bis06]" or "[1]", so a
reader cannot find a citation in it at a glance. This extension registers a pybtex formatting
style, ``authoryear``: pybtex's ``plain`` style (entries sorted by author, year and title) whose
labels read like the citations ("Bishop, 2006", "Kass and Raftery, 1995", "Blei et al., 2017").
"""

from __future__ import annotations

from pybtex.plugin import register_plugin
from pybtex.style.formatting.plain import Style as PlainStyle
from pybtex.style.labels import BaseLabelStyle
from sphinx.application import Sphinx


def _surnames(entry) -> list[str]:
    people = entry.persons.get("author") or entry.persons.get("editor") or []
    return [" ".join(person.last_names) for person in people]


def author_year_label(entry) -> str:
    """The label of one entry: its authors' surnames and year, as the text cites it."""
    names = _surnames(entry)
    if not names:
        who = entry.fields.get("title", entry.key)
    elif len(names) == 1:
        who = names[0]
    elif len(names) == 2:
        who = f"{names[0]} and {names[1]}"
    else:
        who = f"{names[0]} et al."
    who = who.replace("{", "").replace("}", "")
    return f"{who}, {entry.fields.get('year', 'n.d.')}"


class AuthorYearLabelStyle(BaseLabelStyle):
    """Labels "Surname, year", with a, b, ... appended where two entries would share one."""

    def format_labels(self, sorted_entries):
        labels = [author_year_label(entry) for entry in sorted_entries]
        seen: dict[str, int] = {}
        for label in labels:
            seen[label] = seen.get(label, 0) + 1
        suffix: dict[str, int] = {}
        for label in labels:
            if seen[label] > 1:
                suffix[label] = suffix.get(label, 0) + 1
                yield label + "abcdefghijklmnopqrstuvwxyz"[suffix[label] - 1]
            else:
                yield label


class AuthorYearStyle(PlainStyle):
    """pybtex's plain style with author-year labels."""

    default_label_style = "authoryear"


def setup(app: Sphinx) -> dict:
    register_plugin("pybtex.style.labels", "authoryear", AuthorYearLabelStyle)
    register_plugin("pybtex.style.formatting", "authoryear", AuthorYearStyle)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
