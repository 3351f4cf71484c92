"""curate_qmspin on small archives in the QMspin Part 1 layout, made here."""

import tarfile

import numpy as np
import pytest

from tnq_core.errors import TnqError
from tnq_data.sources.qmspin import curate_qmspin
from tnq_data.store import open_store
from tnq_data.units import HARTREE_TO_EV

METHYLENE = [("C", (0.0, 0.0, 0.1)), ("H", (0.0, 0.98, -0.3)), ("H", (0.0, -0.98, -0.3))]
ETHYLIDENE = [("C", (0.0, 0.0, 0.0)), ("C", (1.5, 0.0, 0.0)), ("H", (-0.4, 1.0, 0.0)), ("H", (1.9, 1.0, 0.0)),
              ("H", (1.9, -0.5, 0.9)), ("H", (1.9, -0.5, -0.9))]


def xyz(atoms, energy: float, separator: str = ",") -> str:
    comment = f"carbene; CASSCF(2e,2o)/vdz-f12; B3LYP -38.91; MRCISD+Q-F12/vdz-f12 energy: {energy:.8f}"
    rows = [f"{s}{separator}" + separator.join(f"{c:.6f}" for c in xyz_) for s, xyz_ in atoms]
    return "\n".join([str(len(atoms)), comment, *rows]) + "\n"


def write_layout(root, files: dict[str, str]):
    """Write {relative path: text} below root/QMspin_Part1."""
    for name, text in files.items():
        path = root / "QMspin_Part1" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / "QMspin_Part1"


GOOD = {
    "geometries_singlet/dsgdb9nsd_000001_1_s.xyz": xyz(METHYLENE, -39.0012345),
    "geometries_triplet/dsgdb9nsd_000001_1_t.xyz": xyz(METHYLENE, -39.0301234, separator=" "),
    "geometries_triplet/dsgdb9nsd_000017_3_t.xyz": xyz(ETHYLIDENE, -78.2500001),
}


def test_archive_pairs_singlet_and_triplet(tmp_path):
    folder = write_layout(tmp_path / "src", GOOD)
    archive = tmp_path / "QMspin_Part1.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname="QMspin_Part1")
    version = curate_qmspin(archive, tmp_path / "s")
    store = open_store(tmp_path / "s")
    assert store.version == version
    assert (store.n_molecules, len(store)) == (2, 3)
    assert store.molecule(0)["source_id"] == "1_1" and store.molecule(0)["conformers"] == (0, 2)
    assert store.molecule(1)["source_id"] == "17_3"
    assert store.column("multiplicity").tolist() == [1, 3, 3]
    assert store.column("total_charge").tolist() == [0, 0, 0]
    np.testing.assert_allclose(store.column("energy"), np.array([-39.0012345, -39.0301234, -78.2500001]) * HARTREE_TO_EV,
                               rtol=1e-12)
    np.testing.assert_allclose(store.conformer(2)["pos"], [xyz_ for _, xyz_ in ETHYLIDENE], atol=1e-6)
    assert store.conformer(2)["z"].tolist() == [6, 6, 1, 1, 1, 1]
    assert "forces" not in store.columns
    assert store.tables["curation"] == [{"reason": "kept", "molecules": 2, "conformers": 3}]
    assert store.manifest["provenance"]["inputs"][0]["name"] == archive.name
    # the unpacked folder holds the same content, hence the same version
    assert curate_qmspin(folder, tmp_path / "from_folder") == version


@pytest.mark.parametrize("name, text, message", [
    ("geometries_singlet/dsgdb9nsd_000002_1_s.xyz", xyz(METHYLENE, -39.0).replace("MRCISD+Q-F12/vdz-f12 energy", "E"),
     r"000002_1_s.xyz: line 2: expected one ';'-separated field naming MRCISD\+Q"),
    ("geometries_singlet/dsgdb9nsd_000002_1_s.xyz", xyz(METHYLENE, -39.0) .replace("energy:", "energies: -1.5"),
     r"line 2: .*found 1 field\(s\) and 2 number\(s\)"),
    ("geometries_singlet/dsgdb9nsd_000002_1_s.xyz", xyz(METHYLENE, -39.0).replace("H,0.000000,0.980000", "H,0.0,zz"),
     r"000002_1_s.xyz: line 4: expected 'element x y z'"),
    ("geometries_singlet/dsgdb9nsd_000002_1_t.xyz", xyz(METHYLENE, -39.0), "suffix 't' contradicts its folder"),
    ("geometries_singlet/dsgdb9nsd_000002.xyz", xyz(METHYLENE, -39.0), "does not end in <QM9 index>"),
    ("geometries_singlet/dsgdb9nsd_000002_1_s.xyz", xyz(METHYLENE[:2], -39.0), "cannot have multiplicity 1"),
    ("geometries_triplet/dsgdb9nsd_000001_1_t.xyz", xyz(ETHYLIDENE, -39.0), "atoms differ from those of"),
])
def test_files_that_do_not_fit_fail_with_file_and_line(tmp_path, name, text, message):
    folder = write_layout(tmp_path / "src", {**GOOD, name: text})
    with pytest.raises(TnqError, match=message):
        curate_qmspin(folder, tmp_path / "s")
    assert not (tmp_path / "s" / "HEAD").exists()
