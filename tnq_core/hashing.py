"""File digests read in chunks: checksums of downloads and of curation inputs."""

import hashlib
from collections.abc import Iterable, Iterator
from pathlib import Path

CHUNK_BYTES = 1 << 20


def file_chunks(path: Path) -> Iterator[bytes]:
    """The bytes of the file at `path`, CHUNK_BYTES at a time."""
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            yield chunk


def digest_file(path: Path, algorithms: Iterable[str]) -> dict[str, str]:
    """Hex digests of the file at `path` for each algorithm, in one pass."""
    digests = {name: hashlib.new(name) for name in sorted(set(algorithms))}
    for chunk in file_chunks(Path(path)):
        for digest in digests.values():
            digest.update(chunk)
    return {name: digest.hexdigest() for name, digest in digests.items()}


def file_checksum(path: Path, algorithm: str = "sha256") -> str:
    """Hex digest of the file at `path` (read in chunks), e.g. for provenance records."""
    return digest_file(path, [algorithm])[algorithm]
