"""Small things around the chapters: the version and licence in every page's footer, and the
home page's browser title.

- The footer reads "ppl VERSION · MIT licence · source of this page (.ipynb)". The version is
  read from ``src/ppl/__init__.py`` (``__version__``, written once there), without importing the
  package.
- Sphinx titles a page "PAGE — BOOK"; on the home page, whose title is the book's, that gave
  "How Pyro Really Works — How Pyro Really Works". The home page keeps the book title alone.
"""

from __future__ import annotations

import re
from pathlib import Path

from sphinx.application import Sphinx

ROOT = Path(__file__).resolve().parent.parent


def package_version() -> str:
    """``ppl.__version__``, read from the source."""
    text = (ROOT / "src" / "ppl" / "__init__.py").read_text(encoding="utf-8")
    match = re.search(r'^__version__ = "([^"]+)"', text, re.MULTILINE)
    if match is None:
        raise RuntimeError("src/ppl/__init__.py does not set __version__")
    return match.group(1)


def _footer(app: Sphinx, config) -> None:
    version = package_version()
    config.version = config.release = version
    config.html_theme_options["extra_footer"] = (
        f'<p class="ppl-footer">ppl {version} · '
        "text and code under the MIT licence · "
        "Copyright © 2026 The ppl authors</p>"
    )


def _home_title(
    app: Sphinx, pagename: str, templatename: str, context, doctree
) -> None:
    if pagename in (app.config.root_doc, app.config.master_doc):
        context["titlesuffix"] = ""


def setup(app: Sphinx) -> dict:
    app.connect("config-inited", _footer)
    app.connect("html-page-context", _home_title)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
