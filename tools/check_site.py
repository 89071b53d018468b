"""Check the rendered website in a real browser: ``python tools/check_site.py _build/html``.

Serves the built site on 127.0.0.1, opens every page in headless Chromium (Playwright driving
Debian's ``/usr/bin/chromium``) and fails on:

- math left untypeset: a page with math must contain MathJax output and no raw ``$$``, ``\\(`` or
  ``\\[`` in its visible text (code excluded);
- any request to a host other than the loopback server;
- a JavaScript console error or an uncaught page error;
- a failed request (HTTP status 400 or more), a broken internal link or a missing anchor;
- an image that did not load, or one without real alt text (empty, or a file name);
- a page wider than the window, at 1280 px (a laptop) and at 390 px (a phone);
- a page whose footer does not state the package's version;
- a copy button on a cell's output (they belong on code);
- in dark mode, a figure drawn inside the theme's grey frame;
- on a phone (390x844, dark mode): a menu button that does not open the chapter list, or chapter
  links in it that are not visible and clickable.

It saves screenshots under ``_build/screenshots/``: every page in full at 1280 px (JPEG), every page at
phone size with the chapter list open (``*-phone-drawer.png``), and each chapter's first figure
(``*-figure.png``).

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
from concurrent.futures import ProcessPoolExecutor
from html.parser import HTMLParser
from multiprocessing import get_context
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
LAPTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
ROOT = Path(__file__).resolve().parent.parent

# Elements that make the page scroll sideways: they stick out past the window's right edge and
# no ancestor scrolls or clips them (a wide code cell that scrolls inside its own box is fine).
OVERFLOW_JS = """() => {
  const width = document.documentElement.clientWidth;
  if (document.documentElement.scrollWidth <= width + 1) return [];
  const clipped = (e) => {
    for (let a = e.parentElement; a && a !== document.body; a = a.parentElement) {
      if (['auto', 'scroll', 'hidden', 'clip'].includes(getComputedStyle(a).overflowX)
          && a.getBoundingClientRect().right <= width + 1) return true;
    }
    return false;
  };
  const sticksOut = (e) => { const r = e.getBoundingClientRect();
                             return r.width > 0 && r.right > width + 1; };
  return Array.from(document.querySelectorAll('body *'))
    .filter(e => sticksOut(e) && !clipped(e))
    .filter(e => !e.parentElement || !sticksOut(e.parentElement) || clipped(e.parentElement))
    .slice(0, 5)
    .map(e => `${e.tagName.toLowerCase()}.${String(e.className).split(' ').join('.')}`
              + ` (right edge at ${Math.round(e.getBoundingClientRect().right)} px)`);
}"""

# At a laptop's width every table and display equation fits its column (on a phone they may
# scroll inside their own box).
CRAMPED_JS = """() => Array.from(document.querySelectorAll(
    '.bd-article .pst-scrollable-table-container, .bd-article mjx-container[display="true"]'))
  .filter(e => e.clientWidth > 0 && e.scrollWidth > e.clientWidth + 1)
  .map(e => e.tagName === 'MJX-CONTAINER'
       ? 'a display equation: ' + (e.textContent || '').slice(0, 50)
       : 'a table: ' + (e.querySelector('th, td') || e).textContent.trim().slice(0, 50))"""

# Images whose alt text is missing or is only a file name (what a screen reader would read out).
BAD_ALT_JS = """() => Array.from(document.querySelectorAll('article img, main img'))
  .filter(img => !img.classList.contains('toggler'))  // the module index's +/- buttons
  .filter(img => { const alt = (img.getAttribute('alt') || '').trim();
                   return alt.length < 8 || /\\.(png|svg|jpe?g|gif)$/i.test(alt)
                          || /^[0-9a-f]{16,}/i.test(alt); })
  .map(img => img.getAttribute('src'))"""

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


def package_version() -> str:
    """``ppl.__version__`` as written in the source."""
    text = (ROOT / "src" / "ppl" / "__init__.py").read_text(encoding="utf-8")
    return text.split('__version__ = "', 1)[1].split('"', 1)[0]


def open_tab(browser, url: str, problems: list[str], **context_options):
    """A new tab on ``url`` that records outside requests, failures and errors in ``problems``."""
    context = browser.new_context(**context_options)
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
    return context, tab


def check_page(
    browser, root: Path, url_root: str, page: Path, shots: Path
) -> list[str]:
    rel = page.relative_to(root).as_posix()
    url = url_root + rel
    name = rel.removesuffix(".html").replace("/", "__")
    problems: list[str] = []
    context, tab = open_tab(browser, url, problems, viewport=LAPTOP)

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
    problems += [
        f"image without real alt text: {src}" for src in tab.evaluate(BAD_ALT_JS)
    ]
    problems += [f"wider than a 1280 px window: {e}" for e in tab.evaluate(OVERFLOW_JS)]
    problems += [f"scrolls sideways at 1280 px: {e}" for e in tab.evaluate(CRAMPED_JS)]
    copy_on_outputs = tab.evaluate(
        "() => document.querySelectorAll('.cell_output .copybtn, .output .copybtn').length"
    )
    if copy_on_outputs:
        problems.append(f"{copy_on_outputs} copy button(s) on cell outputs")
    footer = tab.evaluate(
        "() => (document.querySelector('.ppl-footer') || {}).textContent || ''"
    )
    if f"ppl {package_version()}" not in footer:
        problems.append(
            f"the footer does not state the version (ppl {package_version()})"
        )

    hrefs = tab.evaluate(
        "() => Array.from(document.querySelectorAll('a[href]')).map(a => a.getAttribute('href'))"
    )
    problems += check_links(page, root, hrefs, tab.url)  # tab.url: after any redirect

    tab.screenshot(  # JPEG: a tall page encodes in half the time of PNG
        path=str(shots / f"{name}.jpg"), full_page=True, type="jpeg", quality=70
    )
    if rel.startswith("book/0"):
        figure = tab.query_selector("figure img")
        if figure is not None:
            figure.scroll_into_view_if_needed()
            tab.query_selector("figure").screenshot(
                path=str(shots / f"{name}-figure.png")
            )

    problems += check_phone(tab, shots / f"{name}-phone-drawer.png")
    context.close()
    return [f"{rel}: {p}" for p in dict.fromkeys(problems)]


def check_phone(tab, shot: Path) -> list[str]:
    """The same tab as a phone (390x844) in dark mode: no sideways scrolling, no framed
    figures, and the menu button opens a chapter list whose links are visible and clickable.

    The tab is resized and its colour scheme switched in place (the theme and ppl.js follow
    both), which costs far less than loading and typesetting the page again.
    """
    problems: list[str] = []
    tab.set_viewport_size(PHONE)
    tab.emulate_media(color_scheme="dark")
    tab.evaluate("() => window.scrollTo(0, 0)")
    tab.wait_for_timeout(400)  # ppl.js refits wide equations 150 ms after a resize
    if tab.evaluate("() => document.documentElement.dataset.theme") != "dark":
        problems.append("dark mode: the page did not follow the system's dark setting")
    problems += [f"wider than a 390 px phone: {e}" for e in tab.evaluate(OVERFLOW_JS)]
    framed = tab.evaluate("""() => Array.from(document.querySelectorAll('figure img'))
        .filter(img => getComputedStyle(img).paddingTop !== '0px').length""")
    if framed:
        problems.append(f"dark mode: {framed} figure(s) drawn inside a frame")
    toggles = [b for b in tab.query_selector_all(".primary-toggle") if b.is_visible()]
    if not toggles:
        return problems + ["phone: no visible button opens the chapter list"]
    toggles[0].click()
    try:
        tab.wait_for_selector("#pst-primary-sidebar-modal[open]", timeout=3000)
    except Exception:
        return problems + ["phone: the menu button does not open the chapter list"]
    tab.screenshot(path=str(shot))
    chapters = tab.evaluate(r"""() => {
      const links = Array.from(document.querySelectorAll(
          '#pst-primary-sidebar-modal nav a.reference.internal'))
        .filter(a => a.offsetParent !== null && /(^|\/)0\d_/.test(a.getAttribute('href')));
      if (links.length) links[links.length - 1].dataset.pplLastChapter = "yes";
      return links.length; }""")
    if chapters < 2:
        return problems + [
            f"phone: the open chapter list shows {chapters} chapter link(s)"
        ]
    try:  # the last chapter's link is clickable: visible, enabled, not covered
        tab.locator("[data-ppl-last-chapter]").click(trial=True, timeout=3000)
    except Exception as err:
        problems.append(f"phone: a link in the chapter list cannot be clicked ({err})")
    return problems


def check_pages(
    pages: list[Path], root: Path, url_root: str, shots: Path, chromium: str
) -> list[tuple[str, list[str]]]:
    """Check ``pages`` in one headless Chromium: (page, its problems) for each."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=chromium, args=CHROMIUM_FLAGS, headless=True
        )
        results = [
            (
                page.relative_to(root).as_posix(),
                check_page(browser, root, url_root, page, shots),
            )
            for page in pages
        ]
        browser.close()
    return results


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
    parser.add_argument(
        "--jobs",
        type=int,
        default=min(2, os.cpu_count() or 1),
        help="browsers checking pages at the same time (default: 2, or 1 on one core)",
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
    jobs = max(1, min(args.jobs, len(pages)))
    chunks = [pages[i::jobs] for i in range(jobs)]
    try:
        if jobs == 1:
            results = check_pages(chunks[0], root, url_root, shots, chromium)
        else:  # one browser per process: the pages are independent
            with ProcessPoolExecutor(jobs, mp_context=get_context("fork")) as pool:
                futures = [
                    pool.submit(check_pages, chunk, root, url_root, shots, chromium)
                    for chunk in chunks
                ]
                results = [item for future in futures for item in future.result()]
    finally:
        server.shutdown()
    problems: list[str] = []
    for rel, found in sorted(results):
        status = "ok" if not found else f"{len(found)} problem(s)"
        print(f"  {rel:60s} {status}")
        problems += found
    print(f"check_site: {len(pages)} pages checked, screenshots in {shots}")
    if problems:
        print(f"check_site: {len(problems)} problem(s):")
        for problem in problems:
            print(f"  {problem}")
        return 1
    print(
        "check_site: every page rendered with typeset math, no outside requests, no errors; "
        "it fits a laptop and a phone, and the phone menu opens the chapter list."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
