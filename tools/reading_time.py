"""Estimated reading time of each chapter: prose at 150 words/min, shown code at 15 lines/min.

Markdown counts by words. Code counts by non-blank lines, without the exporter's ``#|``
directive lines; cells whose input the site hides (tags ``hide-input``, ``remove-input``,
``remove-cell``, ``hide-cell``) are not counted. ``make test`` prints the table; the
target in CONTRIBUTING.md is at most 75 minutes a chapter and 8 hours for chapters 1-9.

Usage::

    python tools/reading_time.py [BOOKDIR]
"""

import argparse
import json
import re
import sys
from pathlib import Path

HIDDEN = {"hide-input", "remove-input", "remove-cell", "hide-cell"}
WORDS_PER_MINUTE = 150
CODE_LINES_PER_MINUTE = 15


def counts(path: Path) -> tuple[int, int]:
    """Words of prose and shown lines of code in a notebook."""
    words = code = 0
    for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]:
        src = cell["source"]
        src = "".join(src) if isinstance(src, list) else src
        tags = set(cell.get("metadata", {}).get("tags", []))
        if cell["cell_type"] == "markdown":
            words += len(re.findall(r"\S+", src))
        elif cell["cell_type"] == "code" and not tags & HIDDEN:
            code += sum(
                1
                for line in src.splitlines()
                if line.strip() and not line.lstrip().startswith("#|")
            )
    return words, code


def minutes(words: int, code: int) -> float:
    return words / WORDS_PER_MINUTE + code / CODE_LINES_PER_MINUTE


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("book", nargs="?", default="book", type=Path)
    args = parser.parse_args(argv)
    total = 0.0
    for path in sorted(args.book.glob("[0-9][0-9]_*.ipynb")):
        words, code = counts(path)
        time = minutes(words, code)
        total += time
        print(f"{path.name:40s} {words:6d} words {code:5d} code lines {time:5.0f} min")
    print(f"{'total':40s} {total / 60:5.1f} h")
    return 0


if __name__ == "__main__":
    sys.exit(main())
