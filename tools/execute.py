"""Re-run chapters in place so their stored outputs are fresh: ``python tools/execute.py [NOTEBOOK ...]``.

Each notebook runs top to bottom in a fresh kernel with ``book/`` as working directory, exactly as
``pytest --nbval`` will run it, with ``tqdm`` progress bars switched off as under pytest (they are
for readers, not for the stored outputs). Timing metadata is not recorded, so a re-run that changes nothing
leaves no diff in the outputs that nbval compares.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
os.environ["TQDM_DISABLE"] = "1"  # the kernels inherit it


def execute(path: Path, timeout: int = 600) -> None:
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        record_timing=False,
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.execute()
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
    nb.metadata.pop("widgets", None)
    nbformat.write(nb, path)


def main(argv: list[str]) -> int:
    paths = [Path(p) for p in argv] or sorted((ROOT / "book").glob("*.ipynb"))
    for path in paths:
        print(f"executing {path} ...", flush=True)
        execute(path.resolve())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
