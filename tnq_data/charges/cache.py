"""On-disk cache of charges: one small checksummed file per key, written atomically.

A key hashes (scheme, scheme version, parameters, the versions of the tools the scheme runs, canonical
isomeric SMILES, total charge, multiplicity and, for geometry-dependent schemes, the geometry in canonical atom
order rounded to 1e-5 Å). Only results and failures of the molecule are cached (docs/charges.md). Values are kept in
canonical-rank order, so the same molecule written with another atom order hits the same entry.

File layout: ``<dir>/<key[:2]>/<key>.q`` holding ``sha256(body) + body``, where ``body`` is one JSON header
line (key, atom count, failure reason or null) followed by the charges as little-endian float64. Files are
written to a temporary name and renamed, so concurrent writers and crashes never leave a partial entry
visible; an entry that fails its checksum or its header is deleted and recomputed, never trusted.
"""

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tnq_core.errors import TnqError

#: Geometry rounding (Å) before hashing: below any physically meaningful difference, above float32 noise.
GEOMETRY_DECIMALS = 5


def default_cache_dir() -> Path:
    """``$TNQ_CACHE_DIR`` if set, else ``~/.cache/tnq/charges``."""
    env = os.environ.get("TNQ_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "tnq" / "charges"


def cache_key(scheme: str, version: str, params: dict, tools: dict[str, str], smiles: str, total_charge: int,
              multiplicity: int, positions: np.ndarray | None = None) -> str:
    """Hex key of one computation; `tools` maps tool names to versions, `positions` (N, 3) Å in canonical
    atom order, or None."""
    digest = hashlib.sha256(json.dumps([scheme, version, params, tools, smiles, int(total_charge),
                                        int(multiplicity)], sort_keys=True).encode())
    if positions is not None:
        rounded = np.round(np.asarray(positions, dtype=np.float64), GEOMETRY_DECIMALS) + 0.0  # no -0.0
        digest.update(np.ascontiguousarray(rounded, dtype="<f8").tobytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class Entry:
    """A result: charges (N,) in e in canonical order, or the failure `reason` (then charges is None).

    `retryable` marks a failure that says nothing about the molecule (a timeout): it is never cached.
    """

    charges: np.ndarray | None
    reason: str | None = None
    retryable: bool = False


class ChargeCache:
    """The cache directory; counts `hits`, `misses`, `writes` and `corrupt` entries of this process."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise TnqError(f"cannot create the charge cache {self.directory} ({err}); pass `cache_dir`") from err
        self.hits = self.misses = self.writes = self.corrupt = 0

    def _path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.q"

    def get(self, key: str, n_atoms: int) -> Entry | None:
        """The verified entry of `key` for a molecule of `n_atoms`, or None (counted as a miss)."""
        path = self._path(key)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            self.misses += 1
            return None
        entry = _decode(data, key, n_atoms)
        if entry is None:
            self.corrupt += 1
            self.misses += 1
            path.unlink(missing_ok=True)
            return None
        self.hits += 1
        return entry

    def put(self, key: str, entry: Entry, n_atoms: int) -> None:
        """Write `entry` for `key` atomically (tmp file + rename in the same directory); never a retryable one."""
        if entry.retryable:
            raise ValueError(f"a retryable failure ({entry.reason}) must not be cached")
        charges = np.zeros(0) if entry.charges is None else np.asarray(entry.charges, dtype="<f8")
        header = json.dumps({"key": key, "n_atoms": n_atoms, "reason": entry.reason}).encode()
        body = header + b"\n" + charges.tobytes()
        path = self._path(key)
        path.parent.mkdir(exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(hashlib.sha256(body).digest() + body)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self.writes += 1


def _decode(data: bytes, key: str, n_atoms: int) -> Entry | None:
    """The entry in `data` if its checksum, key and size are right, else None."""
    checksum, body = data[:32], data[32:]
    if hashlib.sha256(body).digest() != checksum or b"\n" not in body:
        return None
    header_bytes, payload = body.split(b"\n", 1)
    try:
        header = json.loads(header_bytes)
    except ValueError:
        return None
    if header.get("key") != key or header.get("n_atoms") != n_atoms:
        return None
    if header.get("reason") is not None:
        return Entry(None, str(header["reason"])) if not payload else None
    if len(payload) != 8 * n_atoms:
        return None
    return Entry(np.frombuffer(payload, dtype="<f8").copy())
