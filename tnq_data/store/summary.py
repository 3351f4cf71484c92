"""Summaries of store versions: `info`, `log` and `diff` as plain dicts (the CLI renders them)."""

from pathlib import Path

from tnq_data.store.manifest import history, read_manifest
from tnq_data.store.reader import open_store


def _disk_bytes(root: Path, manifest: dict) -> int:
    """Bytes on disk of the arrays one version refers to (shared arrays counted once)."""
    paths = {part["path"] for entry in manifest["arrays"].values() for part in entry["shards"]}
    return sum(f.stat().st_size for path in paths for f in (root / path).rglob("*") if f.is_file())


def store_info(path: Path | str, version: str | None = None) -> dict:
    """The `tnq-data info --json` document of one version."""
    store = open_store(path, version)
    manifest = store.manifest
    return {
        "path": str(store.root),
        "version": store.version,
        "parent": store.parent,
        "n_molecules": store.n_molecules,
        "n_conformers": store.n_conformers,
        "n_atoms": store.n_atoms,
        "units": manifest["units"],
        "arrays": [store.column_info(name) for name in store.columns],
        "shards": store.n_shards,
        "shard_layout": manifest["shards"],
        "bytes_on_disk": _disk_bytes(store.root, manifest),
        "tables": {name: rows for name, rows in manifest["tables"].items()},
        "provenance": manifest["provenance"],
    }


def store_log(path: Path | str) -> list[dict]:
    """One entry per version from HEAD back to the first: id, time, command, counts, columns added."""
    chain = history(Path(path))
    entries = []
    for manifest, older in zip(chain, chain[1:] + [None]):
        before = set(older["arrays"]) if older else set()
        changed = sorted(n for n, e in manifest["arrays"].items()
                         if n not in before or older["arrays"][n]["hash"] != e["hash"]) if older else []
        entries.append({
            "version": manifest["version"],
            "parent": manifest["parent"],
            "created": manifest["provenance"].get("created"),
            "command": manifest["provenance"].get("command"),
            "parameters": manifest["provenance"].get("parameters", {}),
            "counts": manifest["counts"],
            "changed_columns": changed,
        })
    return entries


def _split_ref(ref: str) -> tuple[Path, str | None]:
    """`STORE` or `STORE@VERSION`."""
    path, _, version = ref.partition("@")
    return Path(path), version or None


def store_diff(ref_a: str, ref_b: str) -> dict:
    """What differs between two versions (`STORE` or `STORE@VERSION`): counts, columns, tables, parameters."""
    path_a, ver_a = _split_ref(ref_a)
    path_b, ver_b = _split_ref(ref_b)
    a, b = read_manifest(path_a, ver_a), read_manifest(path_b, ver_b)
    names = sorted(set(a["arrays"]) | set(b["arrays"]))
    params_a, params_b = a["provenance"].get("parameters", {}), b["provenance"].get("parameters", {})
    return {
        "a": a["version"],
        "b": b["version"],
        "identical": a["version"] == b["version"],
        "counts": {axis: [a["counts"][axis], b["counts"][axis]] for axis in a["counts"]
                   if a["counts"][axis] != b["counts"][axis]},
        "columns_only_in_a": [n for n in names if n not in b["arrays"]],
        "columns_only_in_b": [n for n in names if n not in a["arrays"]],
        "columns_changed": [n for n in names if n in a["arrays"] and n in b["arrays"]
                            and a["arrays"][n]["hash"] != b["arrays"][n]["hash"]],
        "tables_changed": sorted(n for n in set(a["tables"]) | set(b["tables"]) if a["tables"].get(n) != b["tables"].get(n)),
        "commands": [a["provenance"].get("command"), b["provenance"].get("command")],
        "parameters_changed": {k: [params_a.get(k), params_b.get(k)] for k in sorted(set(params_a) | set(params_b))
                               if params_a.get(k) != params_b.get(k)},
    }
