"""Open a chapter in JupyterLab in headless Chromium and check it reads as on the website.

``python tools/check_lab.py [book/02_bayesian_inference.ipynb]`` starts JupyterLab (with
``--allow-root`` when run as root, as ``make lab`` does) on a copy of the chapter in a temporary
folder, so nothing JupyterLab saves can touch the repository, opens it and fails unless:

- jupyterlab-myst is loaded and renders the chapter's MyST: math typeset by MathJax, and no raw
  ``{eq}``, ``{exercise}`` or ``{solution-start}`` left in the rendered text;
- every solution is collapsed: its dropdown is closed and the cells inside it are collapsed;
- the browser console shows no error from the notebook's rendering (cross-references to labels in
  other cells are reported by jupyterlab-myst as console errors and are allowed).

It saves a screenshot of the chapter's last exercise under ``_build/screenshots/``. Outside CI, a
missing Chromium or Playwright skips the check with a loud message; with ``CI=true`` it fails.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from check_site import CHROMIUM_FLAGS, find_chromium

ROOT = Path(__file__).resolve().parent.parent
PANEL = ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-WindowedPanel-outer"
RAW_MYST = ("{eq}", "{exercise}", "{solution-start}", "{solution-end}", "$$")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_lab(folder: Path, port: int) -> subprocess.Popen:
    """JupyterLab on 127.0.0.1:port serving ``folder``, with its state kept inside ``folder``."""
    bin_dir = Path(sys.executable).parent
    command = [
        str(bin_dir / "jupyter"),
        "lab",
        "--no-browser",
        f"--port={port}",
        "--ServerApp.ip=127.0.0.1",
        "--IdentityProvider.token=",
        "--ServerApp.password=",
        f"--ServerApp.root_dir={folder}",
        f"--LabApp.workspaces_dir={folder / '.workspaces'}",
        f"--LabApp.user_settings_dir={folder / '.settings'}",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]
    # no pop-up asking to fetch Jupyter's news (the machine may be offline)
    settings = folder / ".settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text('{"fetchNews": "false"}')
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")  # as `make lab` does
    env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(folder / ".runtime"))
    log = open(folder / "lab.log", "w")  # the process's; closed when the folder goes
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)


def wait_for(url: str, proc: subprocess.Popen, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"JupyterLab exited with status {proc.returncode}")
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"JupyterLab did not answer on {url} within {seconds:.0f} s")


def check_chapter(browser, url: str, shot: Path) -> list[str]:
    problems: list[str] = []
    tab = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    tab.on(
        "console",
        lambda m: errors.append(m.text) if m.type == "error" else None,
    )
    tab.goto(url)
    try:
        # jupyterlab-myst renders markdown cells into a ".myst" element; plain
        # JupyterLab would render ".jp-RenderedMarkdown" instead.
        tab.wait_for_selector(".jp-MarkdownCell .myst", timeout=60_000)
    except Exception:
        tab.screenshot(path=str(shot))
        return [
            "no markdown cell rendered by jupyterlab-myst within 60 s "
            f"(is it installed? screenshot {shot})"
        ]
    tab.wait_for_timeout(3000)  # MathJax typesets after the first paint

    # The notebook is rendered lazily as it scrolls: walk it top to bottom.
    seen_text = []
    dropdowns = {"solutions": 0, "open": 0}
    collapsed = 0
    for _ in range(400):
        seen_text.append(
            tab.evaluate(
                f"""() => Array.from(document.querySelectorAll(
                '{PANEL} .jp-MarkdownCell .myst')).map(e => e.innerText).join(' ')"""
            )
        )
        found = tab.evaluate(
            f"""() => Array.from(document.querySelectorAll('{PANEL} details'))
                .filter(d => d.innerText.includes('Solution')).map(d => d.open)"""
        )
        dropdowns["solutions"] = max(dropdowns["solutions"], len(found))
        dropdowns["open"] = max(dropdowns["open"], sum(found))
        collapsed = max(
            collapsed,
            tab.evaluate(
                f"() => document.querySelectorAll('{PANEL} .jp-InputPlaceholder').length"
            ),
        )
        at_end = tab.evaluate(
            f"""() => {{ const p = document.querySelector('{PANEL}');
                const end = p.scrollTop + p.clientHeight >= p.scrollHeight - 2;
                p.scrollBy(0, 700); return end; }}"""
        )
        tab.wait_for_timeout(120)
        if at_end:
            break
    tab.evaluate(
        f"""() => {{ const cells = Array.from(document.querySelectorAll(
            '{PANEL} .jp-MarkdownCell')).filter(c => c.innerText.includes('Exercise'));
            if (cells.length) cells[cells.length - 1].scrollIntoView(); }}"""
    )
    tab.wait_for_timeout(2500)
    typeset = tab.evaluate(
        f"() => document.querySelectorAll('{PANEL} .katex, {PANEL} mjx-container').length"
    )
    text = " ".join(seen_text)
    for raw in RAW_MYST:
        if raw in text:
            at = text.index(raw)
            problems.append(
                f"raw MyST {raw!r}: ...{text[max(0, at - 40) : at + 40]!r}..."
            )
    if typeset == 0:
        problems.append("no math typeset")
    if dropdowns["solutions"] == 0:
        problems.append("no solution dropdown rendered")
    if dropdowns["open"]:
        problems.append("a solution dropdown is open")
    if collapsed == 0:
        problems.append("no collapsed cell: the cells inside solutions are shown")
    bad = [e for e in errors if "Cross reference target was not found" not in e]
    problems += [f"console error: {e}" for e in bad[:5]]
    tab.screenshot(path=str(shot))
    tab.close()
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "chapter",
        type=Path,
        nargs="?",
        default=ROOT / "book" / "02_bayesian_inference.ipynb",
    )
    args = parser.parse_args(argv)
    in_ci = os.environ.get("CI", "").lower() in ("1", "true", "yes")
    chromium = find_chromium()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    if chromium is None or sync_playwright is None:
        banner = "!" * 78
        print(
            f"{banner}\ncheck_lab: no Chromium or Playwright: the check did NOT run.\n{banner}"
        )
        return 1 if in_ci else 0

    shots = ROOT / "_build" / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    shot = shots / f"lab-{args.chapter.stem}.png"
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="ppl-lab-") as tmp:
        folder = Path(tmp)
        shutil.copy(args.chapter, folder / args.chapter.name)
        lab = start_lab(folder, port)
        try:
            wait_for(f"http://127.0.0.1:{port}/lab", lab)
            with sync_playwright() as pw:
                browser = pw.chromium.launch(
                    executable_path=chromium, args=CHROMIUM_FLAGS, headless=True
                )
                problems = check_chapter(
                    browser,
                    f"http://127.0.0.1:{port}/lab/tree/{args.chapter.name}?reset",
                    shot,
                )
                browser.close()
        except RuntimeError as err:
            problems = [str(err), (folder / "lab.log").read_text()[-2000:]]
        finally:
            lab.terminate()
            try:
                lab.wait(timeout=20)
            except subprocess.TimeoutExpired:
                lab.kill()
    name = args.chapter.name
    if problems:
        print(f"check_lab: {name} in JupyterLab: {len(problems)} problem(s):")
        for problem in problems:
            print(f"  {problem}")
        return 1
    print(
        f"check_lab: {name} in JupyterLab: MyST rendered, math typeset, solutions "
        f"collapsed; screenshot {shot.relative_to(ROOT)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
