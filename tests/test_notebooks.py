"""The chapters as files: what JupyterLab and the website need from every notebook.

- nbformat 4.5 with cell ids and a Python 3 kernelspec, so every chapter opens in JupyterLab on
  the right kernel;
- every cell of a solution (between ``{solution-start}`` and ``{solution-end}``) is collapsed in
  JupyterLab, as the website collapses the solution;
- every figure has a numbered caption, a name to refer to it by, and alt text, and shows alone;
- no progress bar reached a stored output (they are switched off under pytest and
  ``tools/execute.py``).
"""

import json
import re
from pathlib import Path

import pytest

BOOK = Path(__file__).resolve().parent.parent / "book"
CHAPTERS = sorted(BOOK.glob("[0-9][0-9]_*.ipynb"))
START = re.compile(r"^```\{solution-start\}", re.MULTILINE)
END = re.compile(r"^```\{solution-end\}", re.MULTILINE)


def load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def source(cell: dict) -> str:
    return "".join(cell["source"])


def solution_cells(nb: dict) -> list[dict]:
    """The cells strictly inside gated solutions."""
    inside, found = False, []
    for cell in nb["cells"]:
        text = source(cell) if cell["cell_type"] == "markdown" else ""
        if START.search(text):
            inside = True
            continue
        if END.search(text):
            inside = False
            continue
        if inside:
            found.append(cell)
    assert not inside, "a solution-start without its solution-end"
    return found


def test_there_are_chapters():
    assert len(CHAPTERS) >= 9


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_format_ids_and_kernel(path):
    nb = load(path)
    assert (nb["nbformat"], nb["nbformat_minor"]) >= (4, 5)
    ids = [cell.get("id") for cell in nb["cells"]]
    assert all(ids) and len(set(ids)) == len(ids)
    assert nb["metadata"]["kernelspec"]["name"] == "python3"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_solutions_are_collapsed_in_jupyterlab(path):
    cells = solution_cells(load(path))
    assert cells, "every chapter has a worked solution"
    for cell in cells:
        hidden = cell["metadata"].get("jupyter", {})
        assert hidden.get("source_hidden") is True, cell["id"]
        if cell["cell_type"] == "code":
            assert hidden.get("outputs_hidden") is True, cell["id"]


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_figures_have_captions_names_and_alt_text(path):
    names = []
    for cell in load(path)["cells"]:
        images = [
            out for out in cell.get("outputs", []) if "image/png" in out.get("data", {})
        ]
        if not images:
            continue
        meta = cell["metadata"].get("mystnb", {})
        caption = meta.get("figure", {}).get("caption", "")
        name = meta.get("figure", {}).get("name", "")
        alt = meta.get("image", {}).get("alt", "")
        assert len(caption.split()) >= 5, f"{cell['id']}: caption"
        assert name.startswith("fig-"), f"{cell['id']}: name"
        assert len(alt.split()) >= 8, f"{cell['id']}: alt text"
        assert len(cell["outputs"]) == 1, f"{cell['id']}: a figure shows alone"
        names.append(name)
    assert len(set(names)) == len(names)


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_no_progress_bar_in_stored_outputs(path):
    for cell in load(path)["cells"]:
        for out in cell.get("outputs", []):
            text = "".join(out.get("text", "")) + "".join(
                out.get("data", {}).get("text/plain", "")
            )
            assert "it/s]" not in text and "s/it]" not in text, cell["id"]
