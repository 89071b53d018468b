"""The README's package example runs, and lands near the exact posterior it quotes."""

import contextlib
import io
import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def test_the_package_example_runs_and_fits_the_coin():
    section = README.read_text(encoding="utf-8").split("## Use the package", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)
    namespace: dict = {}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), namespace)
    a, b = namespace["a"], namespace["b"]
    # Beta(9, 5), mean 0.643: over seeds 0-5 the fit's mean was 0.630-0.645, a 8.6-9.3,
    # b 4.9-5.2
    assert abs(a / (a + b) - 9 / 14) < 0.03 and abs(a - 9) < 1 and abs(b - 5) < 1, (
        a,
        b,
    )
    assert "exact: Beta(9, 5)" in out.getvalue()
