"""The rendered-site checker's link and anchor logic (tools/check_site.py), without a browser."""

from pathlib import Path

import check_site

ROOT = Path(__file__).resolve().parent.parent


def test_links_and_anchors(tmp_path):
    (tmp_path / "book").mkdir()
    (tmp_path / "_static").mkdir()
    (tmp_path / "book" / "a.html").write_text('<h1 id="top">A</h1><a name="old"></a>')
    (tmp_path / "book" / "b.html").write_text("<p>B</p>")
    (tmp_path / "_static" / "x.css").write_text("")
    check_site.anchors_of.cache_clear()
    base = "http://127.0.0.1:8000/book/b.html"
    hrefs = [
        "a.html",
        "a.html#top",
        "a.html#old",
        "#",
        "../_static/x.css",
        "https://example.org/",
        "mailto:someone@example.org",
        "missing.html",
        "a.html#nowhere",
        "../book/",
    ]
    problems = check_site.check_links(
        tmp_path / "book" / "b.html", tmp_path, hrefs, base
    )
    assert problems == [
        "broken link 'missing.html'",
        "link 'a.html#nowhere': no element with id 'nowhere' in book/a.html",
        "broken link '../book/'",
    ]


def test_pages_skip_static_folders(tmp_path):
    for rel in ["index.html", "book/c.html", "_static/d.html", "_sources/e.html"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("")
    assert [
        p.relative_to(tmp_path).as_posix() for p in check_site.pages_of(tmp_path)
    ] == ["book/c.html", "index.html"]


def test_missing_site_is_an_error(tmp_path, capsys):
    assert check_site.main([str(tmp_path)]) == 1
    assert "build the book first" in capsys.readouterr().out
