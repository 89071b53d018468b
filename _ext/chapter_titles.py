"""Chapter titles without their hand-written number on the website.

A chapter opens with ``# 2. Bayesian inference`` so that the number shows in Jupyter. On the
website the table of contents numbers the chapters itself (``numbered: true`` in ``_toc.yml``;
this is what makes figures, equations and exercises read "Figure 2.1", "(2.3)", "Exercise 2.1"),
so the title would read "2. 2. Bayesian inference". This transform drops a leading "N. " from
the first title of each numbered chapter (``book/NN_*``) before Sphinx records the title.
"""

from __future__ import annotations

import re

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.transforms import SphinxTransform

CHAPTER = re.compile(r"^book/\d\d_")
NUMBER = re.compile(r"^\d+\.\s+")


class StripChapterNumber(SphinxTransform):
    default_priority = 200

    def apply(self, **kwargs) -> None:
        if not CHAPTER.match(self.env.docname):
            return
        title = next(self.document.findall(nodes.title), None)
        if title is None or not title.children:
            return
        first = title.children[0]
        if isinstance(first, nodes.Text) and NUMBER.match(first.astext()):
            title.replace(first, nodes.Text(NUMBER.sub("", first.astext(), count=1)))


def setup(app: Sphinx) -> dict:
    app.add_transform(StripChapterNumber)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
