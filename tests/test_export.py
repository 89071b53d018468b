"""The exporter (tools/export.py): notebooks -> src/ppl, its check mode, and its errors."""

import io
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import export  # noqa: E402


def notebook(*cells: tuple[str, str]) -> str:
    return json.dumps({
        "cells": [{"cell_type": kind, "metadata": {}, "source": src,
                   **({"outputs": [], "execution_count": None} if kind == "code" else {})}
                  for kind, src in cells],
        "metadata": {}, "nbformat": 4, "nbformat_minor": 5})


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    (tmp_path / "book").mkdir()
    (tmp_path / "src" / "ppl" / "infer").mkdir(parents=True)
    (tmp_path / "src" / "ppl" / "__init__.py").write_text('"""hand-written"""\n')
    (tmp_path / "src" / "ppl" / "infer" / "__init__.py").write_text("")
    (tmp_path / "book" / "01_one.ipynb").write_text(notebook(
        ("markdown", "# One"),
        ("code", "#| default_exp exact"),
        ("code", "#| export\nimport torch\n\ndef f(x):\n    return x + 1"),
        ("code", "print(f(1))"),
    ))
    (tmp_path / "book" / "02_two.ipynb").write_text(notebook(
        ("code", "#| default_exp exact"),
        ("code", "#|export\nimport torch\n\nclass G:\n    pass"),
        ("code", "#| default_exp infer.svi"),
        ("code", "#| export\nSTEPS = 3"),
    ))
    return tmp_path


def run(root: Path, check: bool = False) -> tuple[int, str]:
    out = io.StringIO()
    code = export.export(root, check=check, out=out)
    return code, out.getvalue()


def test_round_trip_writes_modules_then_check_passes(repo):
    code, _ = run(repo)
    assert code == 0
    exact = (repo / "src/ppl/exact.py").read_text()
    first_line = exact.splitlines()[0]
    assert first_line.startswith(export.HEADER_PREFIX)
    assert "book/01_one.ipynb, book/02_two.ipynb" in first_line
    assert "def f(x):" in exact and "class G:" in exact
    assert "#|" not in exact and "print(f(1))" not in exact
    assert exact.index("def f") < exact.index("class G")  # book order
    svi = (repo / "src/ppl/infer/svi.py").read_text()
    assert "STEPS = 3" in svi and "02_two" in svi.splitlines()[0] and "01_one" not in svi
    assert (repo / "src/ppl/__init__.py").read_text() == '"""hand-written"""\n'
    code, out = run(repo, check=True)
    assert code == 0, out


def test_generated_module_is_importable(repo):
    run(repo)
    namespace: dict = {}
    exec(compile((repo / "src/ppl/exact.py").read_text(), "exact.py", "exec"), namespace)
    assert namespace["f"](1) == 2


def test_check_fails_with_a_diff_when_a_line_is_deleted(repo):
    run(repo)
    path = repo / "src/ppl/exact.py"
    lines = path.read_text().splitlines(True)
    path.write_text("".join(line for line in lines if "return x + 1" not in line))
    code, out = run(repo, check=True)
    assert code == 1
    assert "+    return x + 1" in out and "src/ppl/exact.py" in out


def test_check_fails_when_the_notebook_changes(repo):
    run(repo)
    nb = repo / "book/01_one.ipynb"
    nb.write_text(nb.read_text().replace("x + 1", "x + 2"))
    code, out = run(repo, check=True)
    assert code == 1 and "-    return x + 1" in out and "+    return x + 2" in out


def test_check_fails_on_a_module_no_chapter_exports(repo):
    run(repo)
    stale = repo / "src/ppl/old.py"
    stale.write_text(export.HEADER_PREFIX + "book/09_gone.ipynb" + export.HEADER_SUFFIX + "\n")
    hand = repo / "src/ppl/handmade.py"
    hand.write_text("x = 1\n")
    code, out = run(repo, check=True)
    assert code == 1
    assert "src/ppl/old.py: generated module that no chapter exports" in out
    assert "src/ppl/handmade.py: hand-written module" in out
    code, _ = run(repo)  # a plain export removes the stale generated file, keeps the hand-written one
    assert not stale.exists() and hand.exists()


def test_check_fails_on_a_missing_module(repo):
    run(repo)
    (repo / "src/ppl/infer/svi.py").unlink()
    code, out = run(repo, check=True)
    assert code == 1 and "+STEPS = 3" in out


def test_a_name_defined_twice_in_one_module_is_an_error(repo):
    nb = repo / "book/02_two.ipynb"
    nb.write_text(nb.read_text().replace("class G:", "class f:"))
    code, out = run(repo)
    assert code == 2
    assert "'f' is defined twice" in out and "01_one.ipynb cell 2" in out and "02_two.ipynb cell 1" in out
    assert not (repo / "src/ppl/exact.py").exists()  # nothing written on error


def test_repeated_imports_are_not_duplicates(repo):
    code, out = run(repo)
    assert code == 0, out  # both chapters `import torch` into ppl.exact


@pytest.mark.parametrize("cells, message", [
    ([("code", "#| export\nx = 1")], "before any '#| default_exp'"),
    ([("code", "#| default_exp exact\n"), ("code", "#| exprot\nx = 1")], "unknown directive '#| exprot'"),
    ([("code", "#| default_exp bad-name")], "bad module name"),
    ([("code", "#| default_exp exact"), ("code", "#| export\ndef broken(:\n    pass")], "does not parse"),
    ([("code", "#| default_exp newpkg.mod"), ("code", "#| export\nx = 1")], "__init__.py is missing"),
])
def test_bad_directives_are_errors(repo, cells, message):
    (repo / "book/03_bad.ipynb").write_text(notebook(*cells))
    code, out = run(repo)
    assert code == 2 and message in out, out


def test_split_directives_keeps_code_below():
    directives, code = export.split_directives("#| export\n#|  default_exp a.b \nx = 1\n#| not a directive")
    assert directives == [("export", ""), ("default_exp", "a.b")]
    assert code == "x = 1\n#| not a directive"


def test_the_repository_is_in_sync():
    code, out = run(ROOT, check=True)
    assert code == 0, out
