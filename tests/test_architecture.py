"""The layers import one way (docs/architecture.md): core <- data <- model, the model reads the data package
only through tnq_data.store, and tnq_model/nn is pure torch. Every import counts, function-level ones too."""

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("tnq_core", "tnq_data", "tnq_model")


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in the file, relative imports resolved."""
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            name = ".".join([*base, node.module] if node.module else base)
            found.append((node.lineno, name))
            found += [(node.lineno, f"{name}.{alias.name}") for alias in node.names if not node.module]
    return found


def allowed(importer: str, imported: str) -> bool:
    """Whether module `importer` may import `imported` (both absolute names)."""
    top = imported.split(".")[0]
    if top not in PACKAGES:
        return True
    if importer.startswith("tnq_model.nn"):
        return imported.startswith("tnq_model.nn")
    rank = {"tnq_core": 0, "tnq_data": 1, "tnq_model": 2}
    if rank[top] > rank[importer.split(".")[0]]:
        return False
    if importer.startswith("tnq_model") and top == "tnq_data":
        return imported == "tnq_data.store" or imported.startswith("tnq_data.store.")
    return True


def violations() -> list[str]:
    found = []
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            importer = module_name(path)
            found += [f"{path.relative_to(REPO)}:{line} imports {name}"
                      for line, name in imported_modules(path) if not allowed(importer, name)]
    return found


def test_imports_follow_the_layers() -> None:
    assert violations() == []


@pytest.mark.parametrize("importer, imported, ok", [
    ("tnq_core.cli", "tnq_data.store", False),
    ("tnq_data.pipeline.runner", "tnq_model.train", False),
    ("tnq_model.train", "tnq_data.store.reader", True),
    ("tnq_model.train", "tnq_data.charges", False),
    ("tnq_model.nn.state", "tnq_core.errors", False),
    ("tnq_model.nn.state", "tnq_model.nn.errors", True),
    ("tnq_model.potential", "tnq_core.errors", True),
    ("tnq_data.curate", "numpy", True),
])
def test_the_rule_itself(importer, imported, ok) -> None:
    assert allowed(importer, imported) is ok


def test_relative_imports_are_resolved(tmp_path) -> None:
    names = [name for _, name in imported_modules(REPO / "tnq_model" / "nn" / "state.py")]
    assert "tnq_model.nn.errors" in names
