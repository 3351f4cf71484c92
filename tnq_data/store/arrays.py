"""One zarr v3 array per (shard, column): content hashing, atomic writes, whole-array reads."""

import os
import shutil
import uuid
from pathlib import Path

import numpy as np
import xxhash
import zarr
from zarr.codecs import ZstdCodec

#: Length of the content-hash prefix in array directory names.
PATH_HASH_CHARS = 16


def content_hash(array: np.ndarray) -> str:
    """xxh3-128 of dtype, shape and values (hex, 32 chars); text is hashed as length-prefixed UTF-8.

    The hash covers decoded values, not encoded bytes, so it does not depend on the codec version.
    """
    digest = xxhash.xxh3_128()
    if array.dtype.kind in "OUT":
        encoded = [str(s).encode() for s in array.ravel()]
        digest.update(f"str{array.shape}".encode())
        digest.update(np.fromiter(map(len, encoded), dtype="<i8", count=len(encoded)).tobytes())
        digest.update(b"".join(encoded))
    else:
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(np.ascontiguousarray(array).data)
    return digest.hexdigest()


def combine_hashes(hashes: list[str]) -> str:
    """One hash over an ordered list of hashes (a column over all its shards)."""
    return xxhash.xxh3_128_hexdigest("\n".join(hashes).encode())


def _compressors(array: np.ndarray) -> tuple:
    """Floats are stored raw (they hardly compress and raw writes are 2-3x faster); the rest with zstd."""
    return () if array.dtype.kind == "f" else (ZstdCodec(level=3, checksum=True),)


def write_array(root: Path, relpath: str, array: np.ndarray) -> None:
    """Write `array` (non-empty) as one single-chunk zarr array at `root/relpath`, atomically (tmp dir + rename).

    An existing `relpath` is content-addressed, hence already holds these values, and is kept.
    """
    final = root / relpath
    if final.exists():
        return
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".tmp-{uuid.uuid4().hex}"
    dtype = str if array.dtype.kind in "OUT" else array.dtype
    z = zarr.create_array(store=str(tmp), shape=array.shape, dtype=dtype, chunks=array.shape,
                          compressors=_compressors(array), fill_value=None if dtype is str else 0)
    z[...] = array
    try:
        os.rename(tmp, final)
    except OSError:
        if not final.exists():
            raise
        shutil.rmtree(tmp, ignore_errors=True)


def read_array(root: Path, relpath: str) -> np.ndarray:
    """Read a whole array written by `write_array` (text comes back as an object array of str)."""
    values = zarr.open_array(store=str(root / relpath), mode="r")[...]
    return values.astype(object) if values.dtype.kind in "TU" else values
