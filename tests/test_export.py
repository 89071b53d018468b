"""The exporter (tools/export.py): notebooks -> src/ppl, its check mode, and its errors."""

import io
import json
import subprocess
import sys
from pathlib import Path

import export
import pytest

ROOT = Path(__file__).resolve().parent.parent


def notebook(*cells: tuple[str, str]) -> str:
    return json.dumps(
        {
            "cells": [
                {
                    "cell_type": kind,
                    "metadata": {},
                    "source": src,
                    **(
                        {"outputs": [], "execution_count": None}
                        if kind == "code"
                        else {}
                    ),
                }
                for kind, src in cells
            ],
            "metadata": {},
            "nbformat": 4,
            "nbformat_minor": 5,
        }
    )


ONE = (
    ("markdown", "# One"),
    ("code", "#| default_exp exact"),
    (
        "code",
        '#| export\n"""Exact things."""\n\nimport torch\n\n\ndef f(x):\n    return x + 1',
    ),
    ("code", "print(f(1))"),
)
TWO = (
    ("code", "#| default_exp exact"),
    ("code", "#|export\nimport math\nimport torch\n\nclass G:\n    pass"),
    ("code", "#| default_exp infer.svi"),
    ("code", '#| export\n"""SVI."""\n\nSTEPS = 3'),
)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    (tmp_path / "book").mkdir()
    (tmp_path / "src" / "ppl" / "infer").mkdir(parents=True)
    (tmp_path / "src" / "ppl" / "__init__.py").write_text('"""hand-written"""\n')
    (tmp_path / "src" / "ppl" / "infer" / "__init__.py").write_text("")
    (tmp_path / "book" / "01_one.ipynb").write_text(notebook(*ONE))
    (tmp_path / "book" / "02_two.ipynb").write_text(notebook(*TWO))
    return tmp_path


def run(root: Path, check: bool = False) -> tuple[int, str]:
    out = io.StringIO()
    code = export.export(root, check=check, out=out)
    return code, out.getvalue()


def module_text(repo: Path, name: str = "exact") -> str:
    return (repo / "src/ppl" / f"{name.replace('.', '/')}.py").read_text()


def test_round_trip_writes_modules_then_check_passes(repo):
    code, _ = run(repo)
    assert code == 0
    exact = module_text(repo)
    lines = exact.splitlines()
    assert lines[0].startswith(export.HEADER_PREFIX) and lines[1] == export.HEADER_NOTE
    assert "book/01_one.ipynb, book/02_two.ipynb" in lines[0]
    assert lines[3] == '"""Exact things."""'  # the first cell's docstring
    assert "def f(x):" in exact and "class G:" in exact
    assert "#|" not in exact and "print(f(1))" not in exact
    assert exact.index("def f") < exact.index("class G")  # book order
    svi = module_text(repo, "infer.svi")
    assert "STEPS = 3" in svi and "02_two" in svi.splitlines()[0]
    assert "01_one" not in svi
    assert (repo / "src/ppl/__init__.py").read_text() == '"""hand-written"""\n'
    code, out = run(repo, check=True)
    assert code == 0, out


def test_imports_are_hoisted_merged_and_sorted(repo):
    nb = repo / "book/02_two.ipynb"
    cells = list(TWO) + [
        ("code", "#| default_exp exact"),
        (
            "code",
            "#| export\nfrom collections import abc\n"
            "from collections import OrderedDict as OD, deque\n\n\n"
            "def h():\n    import json\n\n    return math.pi, abc, OD, deque, STEPS, torch",
        ),
    ]
    nb.write_text(notebook(*cells))
    assert run(repo)[0] == 0
    exact = module_text(repo)
    top = exact.split('"""Exact things."""')[1].split("\n\n\n# Chapter 1")[0]
    assert top == (
        "\n\nimport math\nfrom collections import OrderedDict as OD\n"
        "from collections import abc, deque\n\nimport torch\n\n"
        "from ppl.infer.svi import STEPS"
    ), top
    assert exact.count("import torch") == 1  # two cells import it, once in the module
    assert "    import json" in exact  # an import inside a function stays there
    # each chapter's part opens with a comment naming it
    assert "# Chapter 1 (book/01_one.ipynb)\ndef f(x):" in exact
    assert "# Chapter 2 (book/02_two.ipynb)\nclass G:" in exact


def test_generated_module_is_importable(repo):
    run(repo)
    namespace: dict = {}
    exec(compile(module_text(repo), "exact.py", "exec"), namespace)
    assert namespace["f"](1) == 2


def test_generated_modules_are_ruff_clean(repo):
    nb = repo / "book/02_two.ipynb"
    nb.write_text(
        notebook(
            *TWO,
            ("code", "#| default_exp exact"),
            (
                "code",
                "#| export\nfrom typing import Callable\nimport numpy as np\n"
                "from collections import deque, OrderedDict as OD\n\n"
                "H: Callable = print\nJ = np, deque, OD",
            ),
        )
    )
    assert run(repo)[0] == 0
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--isolated", "--select", "E,F,I,W"]
        + ["--config", "lint.isort.known-first-party = ['ppl']"]
        + [str(repo / "src")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_module_needs_a_docstring(repo):
    nb = repo / "book/01_one.ipynb"
    nb.write_text(nb.read_text().replace('\\"\\"\\"Exact things.\\"\\"\\"\\n\\n', ""))
    code, out = run(repo)
    assert code == 2 and "must open with the module's docstring" in out, out


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
    stale.write_text(export.HEADER_PREFIX + "book/09_gone.ipynb.\n")
    hand = repo / "src/ppl/handmade.py"
    hand.write_text("x = 1\n")
    code, out = run(repo, check=True)
    assert code == 1
    assert "src/ppl/old.py: generated module that no chapter exports" in out
    assert "src/ppl/handmade.py: hand-written module" in out
    # a plain export removes the stale generated file, keeps the hand-written one
    run(repo)
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
    assert "'f' is defined twice" in out
    assert "01_one.ipynb, cell 2" in out and "02_two.ipynb, cell 1" in out
    assert not (repo / "src/ppl/exact.py").exists()  # nothing written on error


CLASS_CELL = (
    "#| export\nclass K:\n    def __init__(self):\n        self.n = 1\n\n"
    "    def step(self):\n        return self.n\n\n    def last(self):\n        return 0"
)
PATCH_CELL = (
    "#| patch K\nimport math\n\n\ndef step(self):\n    return math.floor(self.n + 1.5)"
    "\n\n\nK.step = step  # the better version"
)


def patched_repo(repo: Path, patch: str) -> tuple[int, str]:
    (repo / "book/03_three.ipynb").write_text(
        notebook(("code", "#| default_exp exact"), ("code", CLASS_CELL))
    )
    (repo / "book/04_four.ipynb").write_text(
        notebook(("code", "#| default_exp exact"), ("code", patch))
    )
    return run(repo)


def test_a_patch_puts_the_final_method_in_the_class_body(repo):
    code, out = patched_repo(repo, PATCH_CELL)
    assert code == 0, out
    exact = module_text(repo)
    body = exact.split("class K:")[1]
    assert "return self.n\n" not in body  # chapter 3's version is gone
    assert "    # Final version: book/04_four.ipynb.\n    def step(self):\n" in body
    assert body.index("def __init__") < body.index("def step") < body.index("def last")
    assert "K.step =" not in exact and "import math" in exact
    namespace: dict = {}
    exec(compile(exact, "exact.py", "exec"), namespace)
    assert namespace["K"]().step() == 2


@pytest.mark.parametrize(
    "patch, message",
    [
        (PATCH_CELL.replace("#| patch K", "#| patch Q"), "defines class Q"),
        (
            PATCH_CELL.replace("step", "stop"),
            "has no method 'stop'",
        ),
        (PATCH_CELL.replace("\n\n\nK.step = step", ""), "assign each function"),
        (PATCH_CELL + "\nprint(1)", "holds only imports, functions"),
        (PATCH_CELL.replace("K.step = step", "K.stop = step"), "name the function"),
        ("#| patch", "needs a class name"),
    ],
)
def test_bad_patches_are_errors(repo, patch, message):
    code, out = patched_repo(repo, patch)
    assert code == 2 and message in out, out


def test_an_import_of_a_later_or_own_export_is_an_error(repo):
    nb = repo / "book/01_one.ipynb"
    nb.write_text(notebook(*ONE, ("code", "from ppl.exact import G\nG()")))
    code, out = run(repo)
    assert code == 2 and "imports 'G' from ppl.exact, but book/02_two.ipynb" in out
    # an exported cell too: it would rebind the notebook's G to the package's
    nb.write_text(notebook(*ONE))
    cells = list(TWO) + [("code", "#| export\nfrom ppl.exact import G\n\nH = G")]
    (repo / "book/02_two.ipynb").write_text(notebook(*cells))
    code, out = run(repo)
    assert code == 2 and "imports 'G' from ppl.exact" in out
    # an earlier chapter's name is fine
    cells = list(TWO) + [("code", "from ppl.exact import f\nf(1)")]
    (repo / "book/02_two.ipynb").write_text(notebook(*cells))
    assert run(repo)[0] == 0


def test_names_from_other_modules_are_imported_for_the_package(repo):
    # chapter 2's svi cell uses G and f as the notebook has them; the module imports them
    cells = list(TWO) + [
        ("code", "#| export\ndef make():\n    g = G()\n    return f(1), g, len([])")
    ]
    (repo / "book/02_two.ipynb").write_text(notebook(*cells))
    assert run(repo)[0] == 0
    svi = module_text(repo, "infer.svi")
    assert "from ppl.exact import G, f\n" in svi
    assert "import g" not in svi and "len" not in svi.split('"""SVI."""')[1][:40]
    # a name two other modules define must be imported by hand
    three = ("code", "#| default_exp extra"), ("code", '#| export\n"""X."""\n\nG = 2')
    (repo / "book/03_three.ipynb").write_text(notebook(*three))
    code, out = run(repo)
    assert code == 2 and "uses 'G', which ppl.exact, ppl.extra all define" in out


def test_unused_imports_of_replaced_code_are_dropped(repo):
    patch = PATCH_CELL.replace("math.floor(self.n + 1.5)", "self.n + 1")
    class_cell = CLASS_CELL.replace("#| export\n", "#| export\nimport json\n\n\n")
    class_cell = class_cell.replace("return self.n", "return json.dumps(self.n)")
    (repo / "book/03_three.ipynb").write_text(
        notebook(("code", "#| default_exp exact"), ("code", class_cell))
    )
    (repo / "book/04_four.ipynb").write_text(
        notebook(("code", "#| default_exp exact"), ("code", patch))
    )
    assert run(repo)[0] == 0
    exact = module_text(repo)
    assert "json" not in exact and "import math" not in exact


@pytest.mark.parametrize(
    "cells, message",
    [
        ([("code", "#| export\nx = 1")], "before any '#| default_exp'"),
        (
            [("code", "#| default_exp exact\n"), ("code", "#| exprot\nx = 1")],
            "unknown directive '#| exprot'",
        ),
        ([("code", "#| default_exp bad-name")], "bad module name"),
        (
            [
                ("code", "#| default_exp exact"),
                ("code", "#| export\ndef broken(:\n    pass"),
            ],
            "does not parse",
        ),
        (
            [
                ("code", "#| default_exp newpkg.mod"),
                ("code", '#| export\n"""New."""\nx = 1'),
            ],
            "__init__.py is missing",
        ),
        (
            [("code", "#| default_exp exact"), ("code", "#| export\nfrom os import *")],
            "hides names",
        ),
    ],
)
def test_bad_directives_are_errors(repo, cells, message):
    (repo / "book/03_bad.ipynb").write_text(notebook(*cells))
    code, out = run(repo)
    assert code == 2 and message in out, out


def test_split_directives_keeps_code_below():
    directives, code = export.split_directives(
        "#| export\n#|  default_exp a.b \nx = 1\n#| not a directive"
    )
    assert directives == [("export", ""), ("default_exp", "a.b")]
    assert code == "x = 1\n#| not a directive"


def test_the_repository_is_in_sync():
    code, out = run(ROOT, check=True)
    assert code == 0, out
