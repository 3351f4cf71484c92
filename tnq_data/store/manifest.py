"""Version manifests: content-hash version ids, HEAD, history, the writer lock and provenance."""

import fcntl
import json
import os
import platform
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path

import xxhash

from tnq_core.errors import TnqError
from tnq_data.store.durable import atomic_write, fsync_path
from tnq_data.store.format import FORMAT_NAME, SCHEMA_VERSION
from tnq_data.units import STORE_UNITS

HEAD = "HEAD"
VERSIONS = "versions"
LOCK = ".lock"
#: Key of the hash over every other key of a manifest (provenance included); absent from manifests written
#: before it was introduced, which are checked against their version id only.
CHECKSUM = "checksum"
#: Manifest keys that describe how a version was made, not what it holds: outside the content hash.
NOT_HASHED = ("version", "parent", "provenance", CHECKSUM)
_PACKAGES = ("tnq", "numpy", "zarr", "h5py", "rdkit", "dask", "torch", "tblite", "openff-toolkit", "ambertools")


def canonical_json(obj: object) -> bytes:
    """Deterministic JSON bytes (sorted keys, no whitespace) for hashing."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def content_id(manifest: dict) -> str:
    """Hash of what a version holds (schema, counts, shards, arrays, tables), ignoring how it was made."""
    body = {k: v for k, v in manifest.items() if k not in NOT_HASHED}
    return xxhash.xxh3_128_hexdigest(canonical_json(body))


def manifest_checksum(manifest: dict) -> str:
    """xxh3-128 over every key of `manifest` except the checksum itself."""
    return xxhash.xxh3_128_hexdigest(canonical_json({k: v for k, v in manifest.items() if k != CHECKSUM}))


def version_id(manifest: dict) -> str:
    """The version id: 20 hex chars over the content id and the parent version id."""
    seed = canonical_json({"content": content_id(manifest), "parent": manifest.get("parent")})
    return xxhash.xxh3_128_hexdigest(seed)[:20]


def package_versions() -> dict[str, str]:
    """Versions of the packages that can change a store's contents (those installed)."""
    found = {}
    for name in _PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            for alias in (f"acellera-{name}", f"{name}-unofficial"):
                try:
                    found[name] = metadata.version(alias)
                    break
                except metadata.PackageNotFoundError:
                    continue
    return found


def make_provenance(provenance: dict | None, parent: str | None) -> dict:
    """Complete a caller's provenance (command, parameters, inputs) with packages, time and parent."""
    record = {"command": None, "parameters": {}, "inputs": []}
    record.update(provenance or {})
    record["packages"] = package_versions()
    record["python"] = platform.python_version()
    record["created"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    record["argv"] = sys.argv[1:]
    record["parent"] = parent
    return record


def new_manifest(parent: str | None, counts: dict, shards: list, arrays: dict, tables: dict, provenance: dict) -> dict:
    """Assemble a manifest and stamp its version id and checksum."""
    manifest = {
        "format": FORMAT_NAME,
        "schema_version": SCHEMA_VERSION,
        "units": STORE_UNITS,
        "counts": counts,
        "shards": shards,
        "arrays": arrays,
        "tables": tables,
        "parent": parent,
        "provenance": provenance,
    }
    manifest["version"] = version_id(manifest)
    manifest[CHECKSUM] = manifest_checksum(manifest)
    return manifest


def write_version(root: Path, manifest: dict) -> None:
    """Write `versions/<id>.json` (kept if it exists intact) and then point HEAD at it, each atomically and durably.

    The caller has already flushed every array the manifest names: after this returns, HEAD and everything it
    names survive a power loss.
    """
    versions = root / VERSIONS
    versions.mkdir(parents=True, exist_ok=True)
    if not _intact(root, manifest["version"]):
        atomic_write(versions / f"{manifest['version']}.json", json.dumps(manifest, indent=1, sort_keys=True).encode())
    fsync_path(root)
    atomic_write(root / HEAD, f"{manifest['version']}\n".encode())


def _intact(root: Path, version: str) -> bool:
    """Whether `versions/<version>.json` exists and passes `read_manifest`'s checks."""
    try:
        read_manifest(root, version)
    except TnqError:
        return False
    return True


def is_store(root: Path) -> bool:
    """Whether `root` is a tnq store directory (it has a HEAD)."""
    return (root / HEAD).is_file()


def head_version(root: Path) -> str:
    """The version id HEAD points at; `TnqError` if `root` is not a store."""
    if not root.exists():
        raise TnqError(f"{root}: no such store; create one with `tnq-data curate` or `tnq-data import`")
    if not is_store(root):
        raise TnqError(f"{root} is not a tnq store (no HEAD file); point to a directory made by tnq-data")
    vid = (root / HEAD).read_text().strip()
    if not vid:
        raise TnqError(f"{root / HEAD} is empty; the store is damaged: run `tnq-data verify {root}`")
    return vid


def read_manifest(root: Path, version: str | None = None) -> dict:
    """The manifest of `version` (HEAD when None), checked against its own version id and its checksum.

    Cheap (one hash of a small JSON document); a damaged manifest raises `TnqError` naming the file.
    """
    vid = version or head_version(root)
    path = root / VERSIONS / f"{vid}.json"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in (root / VERSIONS).glob("*.json"))[:5]) or "none"
        raise TnqError(f"{root}: no version {vid} (known: {known}); see `tnq-data log {root}`")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise TnqError(f"{path} is not valid JSON ({err}); the store is damaged: run `tnq-data verify {root}`") from err
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        raise TnqError(f"{path} is not a tnq manifest; the store is damaged: run `tnq-data verify {root}`")
    schema = manifest.get("schema_version")
    if isinstance(schema, int) and schema > SCHEMA_VERSION:
        raise TnqError(f"{path}: schema version {schema} is newer than this tnq reads ({SCHEMA_VERSION}); upgrade tnq")
    if schema != SCHEMA_VERSION:
        raise TnqError(f"{path}: schema version {schema!r} is not {SCHEMA_VERSION}; the store is damaged: run `tnq-data verify {root}`")
    if manifest.get("version") != vid or version_id(manifest) != vid:
        raise TnqError(f"{path}: its contents do not hash to version {vid}; the store is damaged: run `tnq-data verify {root}`")
    if CHECKSUM in manifest and manifest_checksum(manifest) != manifest[CHECKSUM]:
        raise TnqError(f"{path}: its contents do not match its checksum; the store is damaged: run `tnq-data verify {root}`")
    return manifest


def history(root: Path, version: str | None = None) -> list[dict]:
    """Manifests from `version` (HEAD when None) back to the first version, newest first."""
    chain, vid = [], version or head_version(root)
    while vid is not None:
        manifest = read_manifest(root, vid)
        chain.append(manifest)
        vid = manifest.get("parent")
    return chain


@contextmanager
def writer_lock(root: Path) -> Iterator[None]:
    """Hold the store's exclusive writer lock; a second writer gets a clear `TnqError` at once.

    The lock is an flock on `root/.lock`, so a writer that dies releases it with its process.
    """
    root.mkdir(parents=True, exist_ok=True)
    handle = open(root / LOCK, "a+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            owner = handle.read().strip() or "unknown"
            raise TnqError(f"{root} is being written by another process (pid {owner}); wait for it to finish, then run again") from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield
    finally:
        handle.close()


def set_head(root: Path, version: str) -> None:
    """Point HEAD at an existing `version` (like a checkout: no version is changed or removed)."""
    with writer_lock(root):
        manifest = read_manifest(root, version)
        if head_version(root) != version:
            write_version(root, manifest)
