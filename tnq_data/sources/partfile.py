"""``NAME.part``: the bytes of an unfinished download, their running digests, and the server's validator.

The validator (a strong ``ETag``, else ``Last-Modified``) of the response that wrote byte 0 is kept in
``NAME.part.json``; a resumed request sends it as ``If-Range`` so the server restarts from zero when the file
changed, and a ``206`` whose validator differs is never appended (docs/fetch.md, "Resuming and retries").
"""

import hashlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import BinaryIO

from tnq_core.hashing import file_chunks


def response_validator(headers: Mapping[str, str]) -> str | None:
    """The validator of a response for ``If-Range``: its strong ``ETag``, else its ``Last-Modified``, else None."""
    etag = headers.get("ETag")
    if etag and not etag.startswith("W/"):
        return etag
    return headers.get("Last-Modified")


class PartFile:
    """``NAME.part`` plus running digests of its bytes (no second read when done) and its validator."""

    def __init__(self, path: Path, algorithms: Iterable[str]) -> None:
        self.path = path
        self.meta = path.with_name(path.name + ".json")
        self._algorithms = sorted(set(algorithms))
        self._forget()
        if path.exists():
            for chunk in file_chunks(path):
                self._account(chunk)
        self.validator = self._read_validator() if self.size else None

    def _read_validator(self) -> str | None:
        try:
            return json.loads(self.meta.read_text())["validator"]
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def start(self, validator: str | None) -> None:
        """Begin again at byte 0, for a response whose validator is `validator` (None: the server sent none)."""
        self.restart()
        self.validator = validator
        if validator is not None:
            self.meta.write_text(json.dumps({"validator": validator}) + "\n")

    def restart(self) -> None:
        """Delete the bytes received so far and their validator."""
        self.path.unlink(missing_ok=True)
        self.meta.unlink(missing_ok=True)
        self.validator = None
        self._forget()

    def finish(self, path: Path) -> None:
        """Move the complete bytes to `path` (atomic rename) and drop the validator."""
        self.path.replace(path)
        self.meta.unlink(missing_ok=True)

    def _forget(self) -> None:
        self.size = 0
        self._digests = {name: hashlib.new(name) for name in self._algorithms}

    def append(self, handle: BinaryIO, chunk: bytes) -> None:
        handle.write(chunk)
        self._account(chunk)

    def _account(self, chunk: bytes) -> None:
        self.size += len(chunk)
        for digest in self._digests.values():
            digest.update(chunk)

    def hexdigests(self) -> dict[str, str]:
        return {name: digest.hexdigest() for name, digest in self._digests.items()}
