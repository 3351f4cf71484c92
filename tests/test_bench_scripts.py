"""Every bench/ script still imports against the current library (their main() runs only as scripts)."""

import importlib.util
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
#: Scripts that need a package outside tnq's dependencies (run in a side environment, see their docstrings).
NEEDS = {"torchmdnet_reference.py": "torchmdnet"}


@pytest.mark.parametrize("script", sorted(p.name for p in BENCH.glob("*.py")))
def test_bench_script_imports(script: str) -> None:
    if script in NEEDS:
        pytest.importorskip(NEEDS[script])
    spec = importlib.util.spec_from_file_location(f"bench_{Path(script).stem}", BENCH / script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert callable(getattr(module, "main", None)), f"bench/{script} has no main()"
