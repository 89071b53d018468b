"""Check the rendered website in a real browser: ``python tools/check_site.py _build/html``.

Serves the built site on 127.0.0.1, opens every page in headless Chromium (Playwright driving
Debian's ``/usr/bin/chromium``) and fails on:

- math left untypeset: a page with math must contain MathJax output and no raw ``$$``, ``\\(`` or
  ``\\[`` in its visible text (code excluded);
- any request to a host other than the loopback server;
- a JavaScript console error or an uncaught page error;
- a failed request (HTTP status 400 or more), a broken internal link or a missing anchor;
- an image that did not load.

It saves a full-page screenshot of every page under ``_build/screenshots/``.

Outside CI, a missing Chromium or Playwright skips the check with a loud message; with ``CI=true``
it is an error.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import os
import shutil
import sys
import threading
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urldefrag, urljoin, urlparse

CHROMIUM_CANDIDATES = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LOOPBACK = {"127.0.0.1", "localhost", "[::1]", "::1"}

# Visible text of the page without code, scripts and typeset math: raw TeX must not survive there.
VISIBLE_TEXT_JS = """() => {
  const body = document.body.cloneNode(true);
  body.querySelectorAll('pre, code, script, style, mjx-container, .MathJax, textarea')
      .forEach(e => e.remove());
  return body.textContent;
}"""


class _Ids(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        for key, value in attrs:
            if key in ("id", "name") and value:
                self.ids.add(value)


@functools.lru_cache(maxsize=None)
def anchors_of(path: Path) -> frozenset[str]:
    parser = _Ids()
    parser.feed(path.read_text(encoding="utf-8", errors="replace"))
    return frozenset(parser.ids)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep the check's output readable
        pass


def serve(root: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


def find_chromium() -> str | None:
    for candidate in [os.environ.get("CHROMIUM"), *CHROMIUM_CANDIDATES]:
        if candidate and Path(candidate).exists():
            return candidate
    return shutil.which("chromium")


def pages_of(root: Path) -> list[Path]:
    skip = {"_static", "_sources", "_images", "_sphinx_design_static", "_panels_static"}
    return sorted(
        p
        for p in root.rglob("*.html")
        if not skip.intersection(p.relative_to(root).parts)
    )


def check_links(page: Path, root: Path, hrefs: list[str], base: str) -> list[str]:
    """Internal links must point to existing files, and fragments to existing ids."""
    problems = []
    for href in hrefs:
        url = urljoin(base, href)
        parsed = urlparse(url)
        if parsed.scheme not in ("http", "https") or parsed.hostname not in LOOPBACK:
            continue
        target_url, fragment = urldefrag(url)
        rel = unquote(urlparse(target_url).path).lstrip("/")
        target = root / rel
        if target.is_dir():
            target = target / "index.html"
        if not target.exists():
            problems.append(f"broken link {href!r}")
            continue
        if (
            fragment
            and target.suffix == ".html"
            and unquote(fragment) not in anchors_of(target)
        ):
            problems.append(
                f"link {href!r}: no element with id {fragment!r} in {target.relative_to(root)}"
            )
    return problems


def check_page(
    browser, root: Path, url_root: str, page: Path, shots: Path
) -> list[str]:
    rel = page.relative_to(root).as_posix()
    url = url_root + rel
    problems: list[str] = []
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    tab = context.new_page()

    def on_request(request):
        parsed = urlparse(request.url)
        if parsed.scheme in ("data", "blob", "about"):
            return
        if parsed.hostname not in LOOPBACK:
            problems.append(f"request to a non-loopback host: {request.url}")

    def on_response(response):
        if response.status >= 400:
            problems.append(f"HTTP {response.status} for {response.url}")

    tab.on("request", on_request)
    tab.on("response", on_response)
    tab.on(
        "console",
        lambda msg: (
            problems.append(f"console {msg.type}: {msg.text}")
            if msg.type == "error"
            else None
        ),
    )
    tab.on("pageerror", lambda err: problems.append(f"page error: {err}"))
    tab.route(
        lambda u: (
            urlparse(u).hostname not in LOOPBACK
            and urlparse(u).scheme in ("http", "https")
        ),
        lambda route: route.abort(),
    )
    tab.goto(url, wait_until="load")
    tab.wait_for_load_state("networkidle")

    has_math = (
        tab.evaluate(
            "() => document.querySelectorAll('.math, .MathJax, mjx-container').length"
        )
        > 0
    )
    if has_math:
        ready = tab.evaluate("""async () => {
            if (!window.MathJax || !MathJax.startup || !MathJax.startup.promise) return false;
            await MathJax.startup.promise; return true; }""")
        if not ready:
            problems.append("page has math but MathJax did not load")
        elif (
            tab.evaluate("() => document.querySelectorAll('mjx-container').length") == 0
        ):
            problems.append("page has math but MathJax produced no output")
        text = tab.evaluate(VISIBLE_TEXT_JS)
        for raw in ("$$", "\\(", "\\["):
            if raw in text:
                at = text.index(raw)
                problems.append(
                    f"raw TeX {raw!r} left in the page: ...{text[max(0, at - 40) : at + 40]!r}..."
                )

    # a cell tagged hide-input must be collapsed: its source inside a <details> element
    shown = tab.evaluate("""() => Array.from(document.querySelectorAll('div.tag_hide-input'))
        .filter(cell => !cell.querySelector('details')).length""")
    if shown:
        problems.append(f"{shown} cell(s) tagged hide-input are not collapsed")

    broken = tab.evaluate("""() => Array.from(document.images)
        .filter(img => !img.complete || img.naturalWidth === 0).map(img => img.src)""")
    problems += [f"image did not load: {src}" for src in broken]

    hrefs = tab.evaluate(
        "() => Array.from(document.querySelectorAll('a[href]')).map(a => a.getAttribute('href'))"
    )
    problems += check_links(page, root, hrefs, tab.url)  # tab.url: after any redirect

    shot = shots / (rel.removesuffix(".html").replace("/", "__") + ".png")
    tab.screenshot(path=str(shot), full_page=True)
    context.close()
    return [f"{rel}: {p}" for p in dict.fromkeys(problems)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Check the rendered book in headless Chromium."
    )
    parser.add_argument("html", type=Path, nargs="?", default=Path("_build/html"))
    parser.add_argument(
        "--screenshots",
        type=Path,
        default=None,
        help="where to save screenshots (default: _build/screenshots next to html/)",
    )
    args = parser.parse_args(argv)
    root = args.html.resolve()
    in_ci = os.environ.get("CI", "").lower() in ("1", "true", "yes")

    if not (root / "index.html").exists():
        print(
            f"check_site: {root}/index.html not found; build the book first (make book)."
        )
        return 1
    chromium = find_chromium()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    if chromium is None or sync_playwright is None:
        missing = (
            "Chromium (apt-get install chromium)"
            if chromium is None
            else "Playwright (pip)"
        )
        banner = "!" * 78
        print(
            f"{banner}\ncheck_site: {missing} not found: the rendered-site check did NOT run.\n{banner}"
        )
        return 1 if in_ci else 0

    shots = (args.screenshots or root.parent / "screenshots").resolve()
    shutil.rmtree(shots, ignore_errors=True)
    shots.mkdir(parents=True)
    pages = pages_of(root)
    server, url_root = serve(root)
    problems: list[str] = []
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=chromium, args=CHROMIUM_FLAGS, headless=True
            )
            for page in pages:
                found = check_page(browser, root, url_root, page, shots)
                status = "ok" if not found else f"{len(found)} problem(s)"
                print(f"  {page.relative_to(root).as_posix():60s} {status}")
                problems += found
            browser.close()
    finally:
        server.shutdown()
    print(f"check_site: {len(pages)} pages checked, screenshots in {shots}")
    if problems:
        print(f"check_site: {len(problems)} problem(s):")
        for problem in problems:
            print(f"  {problem}")
        return 1
    print(
        "check_site: every page rendered with typeset math, no outside requests, no errors."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
