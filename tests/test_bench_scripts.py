"""Every bench/ script still imports against the current library (their main() runs only as scripts)."""

import importlib
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
#: Scripts that need a package outside tnq's dependencies (run in a side environment, see their docstrings).
NEEDS = {"torchmdnet_reference.py": "torchmdnet"}


@pytest.mark.parametrize("script", sorted(p.name for p in BENCH.glob("*.py")))
def test_bench_script_imports(script: str) -> None:
    if script in NEEDS:
        pytest.importorskip(NEEDS[script])
    module = importlib.import_module(Path(script).stem)  # bench/ is on the tests' path (pyproject.toml)
    assert callable(getattr(module, "main", None)), f"bench/{script} has no main()"
