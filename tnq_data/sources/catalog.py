"""Published releases of the datasets `tnq-data fetch` knows: where they live and their pinned checksums."""

from dataclasses import dataclass

from tnq_core.errors import TnqError


@dataclass(frozen=True)
class Release:
    """One published file of a dataset; `md5`/`sha256` are None where no checksum is pinned."""

    dataset: str
    version: str
    url: str
    filename: str
    source: str
    md5: str | None = None
    sha256: str | None = None
    size: int | None = None


def _zenodo(record: int, filename: str) -> str:
    return f"https://zenodo.org/records/{record}/files/{filename}?download=1"


_RELEASES = (
    Release("spice", "1.1.4", _zenodo(8222043, "SPICE-1.1.4.hdf5"), "SPICE-1.1.4.hdf5",
            source="https://zenodo.org/records/8222043", md5="f27d4c81da0e37d6547276bf6b4ae6a1"),
    Release("spice", "2.0.1", _zenodo(10975225, "SPICE-2.0.1.hdf5"), "SPICE-2.0.1.hdf5",
            source="https://zenodo.org/records/10975225", md5="bfba2224b6540e1390a579569b475510",
            size=37_479_271_148),
    # The file name is the one the authors also mirror at quantum-machine.org; no checksum could be confirmed.
    Release("qmspin", "1", "https://archive.materialscloud.org/records/n5m0g-vyd98/files/QMspin_Part1.tar.gz?download=1",
            "QMspin_Part1.tar.gz", source="https://archive.materialscloud.org/records/n5m0g-vyd98"),
)

#: Version fetched when none is asked for.
DEFAULT_VERSIONS = {"spice": "2.0.1", "qmspin": "1"}


def versions(dataset: str) -> list[str]:
    """Known versions of `dataset`, oldest first."""
    return [release.version for release in _RELEASES if release.dataset == dataset]


def lookup(dataset: str, version: str | None = None) -> Release:
    """The catalogued release of `dataset` at `version` (its default version when None)."""
    if dataset not in DEFAULT_VERSIONS:
        raise TnqError(f"unknown dataset {dataset!r}; known datasets: {', '.join(sorted(DEFAULT_VERSIONS))}")
    wanted = version or DEFAULT_VERSIONS[dataset]
    for release in _RELEASES:
        if release.dataset == dataset and release.version == wanted:
            return release
    raise TnqError(f"unknown {dataset} version {wanted!r}; known versions: {', '.join(versions(dataset))}")
