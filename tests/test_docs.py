"""The README's Python code and the core docstring examples run as written."""

from __future__ import annotations

import doctest
import re
from pathlib import Path

import pytest

from bayesdrop import _io, _wrap, layers, uncertainty

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_blocks_run(tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "README.md has no ```python blocks"
    monkeypatch.chdir(tmp_path)  # anything a block writes stays out of the repository
    namespace: dict = {}
    for number, block in enumerate(blocks, 1):
        try:
            exec(compile(block, f"README.md python block {number}", "exec"), namespace)
        except Exception as error:  # noqa: BLE001
            pytest.fail(f"README python block {number} failed: {type(error).__name__}: {error}")


@pytest.mark.parametrize("module", [_io, _wrap, layers, uncertainty])
def test_core_docstring_examples(module):
    result = doctest.testmod(module, extraglobs={"torch": __import__("torch"), "nn": __import__("torch").nn})
    assert result.attempted > 0 and result.failed == 0


def test_import_bayesdrop_loads_no_optional_dependency():
    import subprocess
    import sys

    code = (
        "import sys, bayesdrop, bayesdrop.plots\n"
        "optional = ('matplotlib', 'mlflow', 'ray', 'yaml', 'sklearn', 'scipy', 'pandas')\n"
        "heavy = [m for m in optional if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"import bayesdrop pulled in: {out.stdout.strip()}"
