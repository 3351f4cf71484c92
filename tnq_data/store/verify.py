"""Re-hash a store against its manifests and name every damaged or missing file."""

from pathlib import Path

import numpy as np

from tnq_core.errors import TnqError
from tnq_data.store.arrays import DamagedArray, read_checked
from tnq_data.store.compositions import derived_composition
from tnq_data.store.format import OFFSET_COLUMNS
from tnq_data.store.manifest import VERSIONS, head_version, read_manifest


def _array_files(path: Path) -> str:
    """The files of a single-chunk array directory, for naming them in a report."""
    files = sorted(str(p) for p in path.rglob("*") if p.is_file())
    return ", ".join(files) if files else str(path)


def _check_array(root: Path, relpath: str, expected_hash: str, shape: tuple[int, ...]) -> str | None:
    path = root / relpath
    if not (path / "zarr.json").is_file():
        return f"missing: {path / 'zarr.json'}"
    try:
        read_checked(root, relpath, shape, expected_hash)
    except DamagedArray as err:
        return f"damaged: {_array_files(path)} ({err.reason})"
    return None


def verify_version(root: Path, version: str) -> list[str]:
    """Problems found in one version: its manifest (id and checksum) and every array it refers to."""
    try:
        manifest = read_manifest(root, version)
    except TnqError as err:
        return [f"damaged: {err}"]
    problems = []
    for name, entry in sorted(manifest["arrays"].items()):
        extra = 1 if name in OFFSET_COLUMNS else 0
        for shard, part in zip(manifest["shards"], entry["shards"]):
            shape = (shard[f"{entry['axis']}s"] + extra, *entry["inner_shape"])
            problem = _check_array(root, part["path"], part["hash"], shape)
            if problem:
                problems.append(problem)
    return problems or _composition_problems(root, manifest)


def _composition_problems(root: Path, manifest: dict) -> list[str]:
    """The shards whose `composition` column (a writer's summary of z, docs/store-format.md) disagrees with
    their z; the arrays themselves are known to be intact."""
    arrays, problems = manifest["arrays"], []
    if "composition" not in arrays:
        return problems
    for k, shard in enumerate(manifest["shards"]):
        entry = arrays["composition"]["shards"][k]
        column = read_checked(root, entry["path"], (shard["conformers"],), entry["hash"])
        if not np.array_equal(column, derived_composition(root, manifest, k)):
            problems.append(f"wrong: {root / entry['path']} (the `composition` column does not match z; rewrite "
                            "the store with tnq)")
    return problems


def verify_store(root: Path | str, all_versions: bool = False) -> tuple[list[str], list[str]]:
    """Verify HEAD (or every version); return (versions checked, problems). Never raises on damage."""
    root = Path(root)
    try:
        head = head_version(root)
    except TnqError as err:
        return [], [str(err)]
    versions = sorted(p.stem for p in (root / VERSIONS).glob("*.json")) if all_versions else [head]
    problems = []
    for version in versions:
        problems.extend(p for p in verify_version(root, version) if p not in problems)
    return versions, problems
