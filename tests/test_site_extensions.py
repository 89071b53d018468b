"""The website's own Sphinx extensions (``_ext/``), on small inputs, without a build."""

from collections import namedtuple

import api_links
import citations
import site_details
from pybtex.database import Entry, Person

import ppl


def entry(authors, year="2006"):
    return Entry(
        "book",
        fields={"title": "T", "year": year},
        persons={"author": [Person(a) for a in authors]},
    )


def test_labels_read_like_the_citations():
    assert citations.author_year_label(entry(["Bishop, Christopher M."])) == (
        "Bishop, 2006"
    )
    assert (
        citations.author_year_label(entry(["Kass, Robert", "Raftery, Adrian"], "1995"))
        == "Kass and Raftery, 1995"
    )
    three = entry(["Blei, David", "Kucukelbir, Alp", "McAuliffe, Jon"], "2017")
    assert citations.author_year_label(three) == "Blei et al., 2017"


def test_two_entries_with_one_label_get_letters():
    style = citations.AuthorYearLabelStyle()
    labels = list(style.format_labels([entry(["Bishop, C."]), entry(["Bishop, C."])]))
    assert labels == ["Bishop, 2006a", "Bishop, 2006b"]


def test_the_footer_version_is_the_package_version():
    assert site_details.package_version() == ppl.__version__


Obj = namedtuple("Obj", "docname node_id objtype aliased")


def test_literal_names_resolve_to_one_object_or_none():
    objects = {
        "ppl.handlers.trace": Obj("h", "ppl.handlers.trace", "function", False),
        "ppl.runtime.trace": Obj("r", "ppl.runtime.trace", "function", False),
        "ppl.handlers.TraceMessenger": Obj("h", "x", "class", False),
        "ppl.handlers.TraceMessenger.process_message": Obj("h", "y", "method", False),
        "ppl.infer.SVI": Obj("i", "z", "class", True),  # an alias: never a target
        "ppl.infer.svi.SVI": Obj("s", "w", "class", False),
    }
    short = {}
    for full in objects:
        short.setdefault(full.rsplit(".", 1)[-1], []).append(full)

    def resolve(name, module="ppl.other"):
        return api_links.LinkLiteralNames._resolve(name, objects, short, module)

    assert resolve("ppl.handlers.trace") == "ppl.handlers.trace"
    assert resolve("trace") is None  # two candidates, neither in this module
    assert resolve("trace", module="ppl.runtime") == "ppl.runtime.trace"
    assert resolve("TraceMessenger.process_message") == (
        "ppl.handlers.TraceMessenger.process_message"
    )
    assert resolve("SVI") == "ppl.infer.svi.SVI"
    assert resolve("x") is None


def test_summaries_are_the_first_paragraph():
    class Obj:
        docstring = "The ELBO of a model, estimated from traces (Pyro's\n``Trace_ELBO``).\n\nMore."

    assert api_links.summary_paragraph(Obj()) == (
        "The ELBO of a model, estimated from traces (Pyro's ``Trace_ELBO``)."
    )
    Obj.docstring = ""
    assert api_links.summary_paragraph(Obj()) == ""
