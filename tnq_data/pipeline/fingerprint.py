"""What a stage's results depend on (its fingerprint), and why a stage must run again when it changed.

A fingerprint holds the stage's parameters, a digest of each input it reads (a store's version id, a file's
content hash), the code revision of the tnq packages it runs (a hash of their source files: a version
string like 0.1.0 does not change when the code does) and the versions of the tools it uses.
"""

import os
from importlib import metadata, util
from pathlib import Path

import xxhash

from tnq_core.errors import TnqError
from tnq_core.hashing import file_chunks
from tnq_data.pipeline.plugins import stage_plugin
from tnq_data.store.manifest import canonical_json

#: Other distribution names the tools are installed as (builds by other vendors).
_ALIASES = ("acellera-{}", "{}-unofficial")
#: Recorded for a tool that is not installed.
NOT_INSTALLED = "not installed"


def code_revision(packages: tuple[str, ...]) -> str:
    """Hash (16 hex) of the paths and bytes of every file of the installed `packages` (no bytecode)."""
    digest = xxhash.xxh3_128()
    for package in packages:
        spec = util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise TnqError(f"the package {package} is not installed; reinstall tnq (pip install -e .)")
        root = Path(next(iter(spec.submodule_search_locations)))
        for path in sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
            digest.update(f"{package}/{path.relative_to(root).as_posix()}\0".encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def tool_version(name: str) -> str:
    """The installed version of the distribution `name` (or a build of it under another name)."""
    for candidate in (name, *(alias.format(name) for alias in _ALIASES)):
        try:
            return metadata.version(candidate)
        except metadata.PackageNotFoundError:
            continue
    return NOT_INSTALLED


def _tools_and_code(stage) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The tools and code packages of `stage`; a plugin kind adds its `TOOLS` and the package it belongs to."""
    if not stage.plugin:
        return stage.tools, stage.code
    plugin = stage_plugin(stage.kind)
    return tuple(getattr(plugin, "TOOLS", ())), (*stage.code, plugin.__name__.split(".")[0])


def fingerprint(stage, inputs: dict[str, str | None]) -> dict:
    """What `stage` depends on; `inputs` maps each input reference to its digest (None: not known yet)."""
    tools, code = _tools_and_code(stage)
    return {"params": stage.model_dump(mode="json", exclude={"name"}), "inputs": inputs,
            "code": code_revision(code) if code else None, "tools": {name: tool_version(name) for name in tools}}


def fingerprint_key(fingerprint: dict) -> str:
    """A short hash (16 hex) of a fingerprint whose inputs are all known, for plans and the state."""
    return xxhash.xxh3_128_hexdigest(canonical_json(fingerprint))[:16]


def changes(recorded: dict, current: dict) -> list[str]:
    """Why `current` differs from the `recorded` fingerprint, one phrase per reason (inputs not yet known are
    not compared)."""
    reasons = []
    params = sorted(k for k in {**recorded["params"], **current["params"]}
                    if recorded["params"].get(k) != current["params"].get(k))
    if params:
        reasons.append(f"parameters changed ({', '.join(params)})")
    for reference, digest in current["inputs"].items():
        before = recorded["inputs"].get(reference)
        if digest is not None and digest != before:
            reasons.append(f"input {reference} changed ({_short(before)} -> {_short(digest)})")
    if recorded["code"] != current["code"]:
        reasons.append(f"tnq code changed (revision {_short(recorded['code'])} -> {_short(current['code'])})")
    before, now = recorded["tools"], current["tools"]
    tools = sorted(t for t in {**before, **now} if before.get(t) != now.get(t))
    if tools:
        reasons.append("tool versions changed (" + ", ".join(
            f"{t} {before.get(t, NOT_INSTALLED)} -> {now.get(t, NOT_INSTALLED)}" for t in tools) + ")")
    return reasons


def _short(digest: str | None) -> str:
    return "none" if digest is None else digest[:12]


class FileDigests:
    """Content hashes of files, remembered by (device, inode, size, mtime) so unchanged files are read once.

    A renamed file keeps its entry (same inode); a rewritten one gets a new mtime and is read again.
    """

    def __init__(self, known: dict[str, str] | None = None) -> None:
        self.known = dict(known or {})
        self.used: dict[str, str] = {}

    def __call__(self, path: Path) -> str:
        """`xxh3:<hex>` of the file at `path`."""
        info = os.stat(path)
        identity = f"{info.st_dev}:{info.st_ino}:{info.st_size}:{info.st_mtime_ns}"
        if identity not in self.known:
            digest = xxhash.xxh3_128()
            for chunk in file_chunks(path):
                digest.update(chunk)
            self.known[identity] = f"xxh3:{digest.hexdigest()}"
        self.used[identity] = self.known[identity]
        return self.known[identity]


def output_digests(outputs: dict, digest_file: FileDigests) -> dict[str, str]:
    """A digest of each thing a stage produced: "" -> the store version or the file, a member name -> its file."""
    if "version" in outputs:
        return {"": outputs["version"]}
    if "file" in outputs:
        return {"": digest_file(Path(outputs["file"]))}
    return {member: digest_file(Path(path)) for member, path in sorted(outputs.get("files", {}).items())}
