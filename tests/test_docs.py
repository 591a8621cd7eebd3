"""The README's Python code and the core docstring examples run as written."""

from __future__ import annotations

import doctest
import importlib
import importlib.util
import pkgutil
import re
from pathlib import Path

import pytest

import bayesdrop
from bayesdrop import _io, _wrap, layers, uncertainty

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_blocks_run(tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "README.md has no ```python blocks"
    monkeypatch.chdir(tmp_path)  # anything a block writes stays out of the repository
    namespace: dict = {}
    for number, block in enumerate(blocks, 1):
        if "from transformers import" in block and importlib.util.find_spec("transformers") is None:
            continue  # the integrations extra is not installed here
        try:
            exec(compile(block, f"README.md python block {number}", "exec"), namespace)
        except Exception as error:  # noqa: BLE001
            pytest.fail(f"README python block {number} failed: {type(error).__name__}: {error}")


@pytest.mark.parametrize("module", [_io, _wrap, layers, uncertainty])
def test_core_docstring_examples(module):
    result = doctest.testmod(module, extraglobs={"torch": __import__("torch"), "nn": __import__("torch").nn})
    assert result.attempted > 0 and result.failed == 0


def _modules_with_examples() -> list[str]:
    finder = doctest.DocTestFinder()
    names = []
    for info in pkgutil.walk_packages(bayesdrop.__path__, "bayesdrop."):
        module = importlib.import_module(info.name)
        if any(t.examples for t in finder.find(module, info.name)):
            names.append(info.name)
    return names


_WITH_EXAMPLES = _modules_with_examples()


@pytest.mark.parametrize("name", _WITH_EXAMPLES)
def test_every_docstring_example_runs(name):
    module = importlib.import_module(name)
    torch = __import__("torch")
    result = doctest.testmod(module, extraglobs={"torch": torch, "nn": torch.nn})
    assert result.failed == 0


# a float printed with this many significant digits shows its last bits, which differ between
# CPUs (vectorised sqrt, log, exp on AVX2 vs AVX-512) and BLAS libraries
_FLOAT = re.compile(r"(?<![\w.])-?(\d+\.\d+)(?:[eE][-+]?\d+)?")
_MAX_DIGITS = 12


def _significant_digits(text: str) -> int:
    return len(text.replace(".", "").lstrip("0"))


def test_docstring_examples_print_no_float_to_its_last_bits():
    finder = doctest.DocTestFinder()
    offending = []
    for name in _WITH_EXAMPLES:
        for test in finder.find(importlib.import_module(name), name):
            for example in test.examples:
                for digits in _FLOAT.findall(example.want):
                    if _significant_digits(digits) > _MAX_DIGITS:
                        offending.append(f"{test.name}: {example.source.strip()} -> {example.want.strip()}")
    assert not offending, "round the printed value (e.g. round(x, 6)):\n" + "\n".join(offending)


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
