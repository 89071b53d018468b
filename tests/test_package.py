"""The wheel people install: its licence, its typing marker, and its metadata."""

import subprocess
import sys
import zipfile
from pathlib import Path

import ppl

ROOT = Path(__file__).resolve().parent.parent


def test_the_wheel_holds_the_licence_the_typing_marker_and_one_version(tmp_path):
    # --no-build-isolation: the pinned setuptools builds it, nothing is downloaded
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps"]
        + ["--no-build-isolation", "--wheel-dir", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("ppl-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
        lines = archive.read(metadata).decode().splitlines()
    assert "ppl/py.typed" in names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert f"Version: {ppl.__version__}" in lines  # the version is written once
    assert "License-Expression: MIT" in lines
    assert "Requires-Python: >=3.11" in lines
    assert 'Requires-Dist: tqdm>=4; extra == "progress"' in lines
