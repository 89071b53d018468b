"""Render the exporter's directives for readers.

A chapter's code cells carry nbdev directives for ``tools/export.py`` (``#| default_exp exact``,
``#| export``, ``#| patch Class``). Readers of the website need not see them. This transform removes the directive lines
from every code cell, drops cells that held nothing else, and puts a small label "exported to
``ppl.MODULE``" (or "exported into class ``ppl.MODULE.Class``") above each exported cell, so
the page shows which code became the package.
"""

from __future__ import annotations

import re

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.transforms import SphinxTransform

DIRECTIVE = re.compile(r"^#\|\s*(\w+)\s*(.*?)\s*$")


def _is_code_cell(node: nodes.Node) -> bool:
    return isinstance(node, nodes.container) and node.get("nb_element") == "cell_code"


def _split(text: str) -> tuple[list[tuple[str, str]], str]:
    lines = text.splitlines()
    found = []
    while lines and DIRECTIVE.match(lines[0]):
        match = DIRECTIVE.match(lines.pop(0))
        found.append((match.group(1), match.group(2)))
    return found, "\n".join(lines)


class ExportLabels(SphinxTransform):
    default_priority = 500

    def apply(self, **kwargs) -> None:
        module = None
        for cell in list(self.document.findall(_is_code_cell)):
            source = next(
                (
                    c
                    for c in cell.children
                    if isinstance(c, nodes.container)
                    and c.get("nb_element") == "cell_code_source"
                ),
                None,
            )
            if source is None:
                continue
            block = next(iter(source.findall(nodes.literal_block)), None)
            if block is None:
                continue
            directives, code = _split(block.astext())
            if not directives:
                continue
            exported, patched = False, None
            for name, arg in directives:
                if name == "default_exp":
                    module = arg
                elif name == "export":
                    exported = True
                elif name == "patch":
                    patched = arg
            if not code.strip():
                outputs = [c for c in cell.children if c is not source]
                if not any(o.children for o in outputs):
                    cell.parent.remove(cell)
                    continue
            block.rawsource = code
            block.children = [nodes.Text(code)]
            if (exported or patched) and module:
                label = nodes.paragraph(classes=["ppl-export-label"])
                if patched:
                    # the methods of this cell replace the class's in the package
                    label += nodes.Text("exported into class ")
                    label += nodes.literal(text=f"ppl.{module}.{patched}")
                else:
                    label += nodes.Text("exported to ")
                    label += nodes.literal(text=f"ppl.{module}")
                # before the cell, not inside it: MyST-NB collapses a hide-input cell only
                # when its first child is the source
                cell.parent.insert(cell.parent.index(cell), label)
                cell["classes"].append("ppl-exported")


def drop_thebe(
    app: Sphinx, pagename: str, templatename: str, context: dict, doctree
) -> None:
    """Remove sphinx-thebe's scripts: Thebe needs a kernel on the internet, and the book is offline.

    Jupyter Book always loads sphinx-thebe, which declares its globals twice on a page (a console
    error) even when launch buttons are off.
    """
    if "script_files" in context:
        context["script_files"] = [
            js
            for js in context["script_files"]
            if "thebe"
            not in (
                str(js) + str(getattr(js, "attributes", {}).get("body", ""))
            ).lower()
        ]


def setup(app: Sphinx) -> dict:
    app.add_transform(ExportLabels)
    app.connect("html-page-context", drop_thebe)
    app.add_css_file("ppl.css")
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
