"""The API reference: names in double backquotes become links; optional imports stay out.

The package's docstrings write other objects as ``trace`` or ``ppl.handlers.trace`` (literal
text). On the API pages (``api/``) this post-transform turns such a literal into a link when it
names exactly one documented Python object: the full name, or a short name that is unique, or
unique within the page's own module. Anything else (``x``, ``None``, code fragments) stays text.

A module that imports an optional package with ``try: import numpy / except ImportError:
numpy = None`` binds a module-level name that is not part of its API: ``OPTIONAL_IMPORTS`` keeps
such names off the pages.

autoapi's summary tables show the first *line* of a docstring, which cuts a summary sentence
wrapped over two lines in half (and can leave a ``literal`` unclosed); they show the first
paragraph instead (``summary_paragraph``).
"""

from __future__ import annotations

import re

from autoapi._objects import PythonObject
from docutils import nodes
from sphinx.application import Sphinx
from sphinx.transforms.post_transforms import SphinxPostTransform

OPTIONAL_IMPORTS = {"ppl.runtime.numpy"}
ALIAS_ENDINGS = ("messenger", ".util", ".trace_struct")
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*(\(\))?$")


class LinkLiteralNames(SphinxPostTransform):
    default_priority = 20
    formats = ("html",)

    def run(self, **kwargs) -> None:
        docname = self.env.docname
        if not docname.startswith("api/"):
            return
        objects = self.env.get_domain("py").objects
        by_short: dict[str, list[str]] = {}
        for full in objects:
            by_short.setdefault(full.rsplit(".", 1)[-1], []).append(full)
        module = ".".join(
            docname.split("/")[1:-1]
        )  # api/ppl/handlers/index -> ppl.handlers
        for literal in list(self.document.findall(nodes.literal)):
            if isinstance(literal.parent, (nodes.reference, nodes.title)):
                continue
            text = literal.astext()
            if not NAME.match(text):
                continue
            name = text.removesuffix("()")
            target = self._resolve(name, objects, by_short, module)
            if target is None:
                continue
            entry = objects[target]
            uri = self.app.builder.get_relative_uri(docname, entry.docname)
            if entry.docname == docname:
                uri = ""
            reference = nodes.reference(
                "", "", internal=True, refuri=f"{uri}#{entry.node_id}", reftitle=target
            )
            literal.replace_self(reference)
            reference += literal

    @staticmethod
    def _resolve(name, objects, by_short, module) -> str | None:
        if name in objects and not objects[name].aliased:
            return name
        if "." in name:  # a dotted tail: Trace.compute_log_prob
            matches = [f for f in objects if f.endswith("." + name)]
        else:
            matches = by_short.get(name, [])
        matches = [m for m in matches if not objects[m].aliased]
        if len(matches) > 1:
            local = [m for m in matches if m.startswith(module + ".")]
            matches = local if len(local) == 1 else matches
        return matches[0] if len(matches) == 1 else None


def summary_paragraph(self) -> str:
    """The first paragraph of the docstring, on one line ("" without a docstring)."""
    lines: list[str] = []
    for line in self.docstring.splitlines():
        if line.strip():
            lines.append(line.strip())
        elif lines:
            break
    return " ".join(lines)


def skip_optional_imports(app, what, name, obj, skip, options):
    """autoapi's skip hook: True hides the member.

    Hidden: optional imports, and ``ppl.poutine``'s submodule aliases (``messenger``,
    ``trace_messenger``, ...), which its docstring and ``SUBMODULES`` table describe.
    """
    if name in OPTIONAL_IMPORTS:
        return True
    if (
        what == "data"
        and name.startswith("ppl.poutine.")
        and name.endswith(ALIAS_ENDINGS)
    ):
        return True
    return None


def setup(app: Sphinx) -> dict:
    app.add_post_transform(LinkLiteralNames)
    PythonObject.summary = property(summary_paragraph)
    app.connect("autoapi-skip-member", skip_optional_imports)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
