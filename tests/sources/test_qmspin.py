"""curate_qmspin on small archives in the QMspin Part 1 layout, made here."""

import tarfile

import numpy as np
import pytest

from tnq_core.errors import TnqError
from tnq_core.hashing import file_checksum
from tnq_data.sources.checksums import write_record
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


# The triplet of methylene with a wider H-C-H angle, its atoms listed H2, C, H1 (H1 at +y, H2 at -y).
TRIPLET_C, TRIPLET_H1, TRIPLET_H2 = (0.0, 0.0, 0.05), (0.0, 1.02, -0.2), (0.0, -1.02, -0.2)
SHUFFLED_TRIPLET = [("H", TRIPLET_H2), ("C", TRIPLET_C), ("H", TRIPLET_H1)]
# ethylidene's triplet, atoms reversed (H, H, H, H, C, C), each moved a little
ETHYLIDENE_T = [(symbol, (x + 0.03, y - 0.02, z + 0.01)) for symbol, (x, y, z) in ETHYLIDENE[::-1]]
# a triplet whose z already equals the singlet's (C, H, H), its hydrogens listed -y first: kept as it is
SAME_Z_TRIPLET = [("C", TRIPLET_C), ("H", TRIPLET_H2), ("H", TRIPLET_H1)]


def test_a_triplet_listing_its_atoms_in_another_order_is_put_in_the_singlets_order(tmp_path):
    folder = write_layout(tmp_path / "src", {
        "geometries_singlet/dsgdb9nsd_000001_1_s.xyz": xyz(METHYLENE, -39.0),
        "geometries_triplet/dsgdb9nsd_000001_1_t.xyz": xyz(SHUFFLED_TRIPLET, -39.1),
        "geometries_singlet/dsgdb9nsd_000017_3_s.xyz": xyz(ETHYLIDENE, -78.2),
        "geometries_triplet/dsgdb9nsd_000017_3_t.xyz": xyz(ETHYLIDENE_T, -78.3),
        "geometries_singlet/dsgdb9nsd_000018_1_s.xyz": xyz(METHYLENE, -39.0),
        "geometries_triplet/dsgdb9nsd_000018_1_t.xyz": xyz(SAME_Z_TRIPLET, -39.1),
    })
    curate_qmspin(folder, tmp_path / "s")
    store = open_store(tmp_path / "s")
    singlet, triplet = store.conformer(0), store.conformer(1)
    assert singlet["z"].tolist() == triplet["z"].tolist() == [6, 1, 1]
    np.testing.assert_allclose(triplet["pos"], [TRIPLET_C, TRIPLET_H1, TRIPLET_H2], atol=1e-6)
    np.testing.assert_allclose(singlet["pos"], [p for _, p in METHYLENE], atol=1e-6)
    ethylidene_s, ethylidene_t = store.conformer(2), store.conformer(3)
    assert ethylidene_t["z"].tolist() == ethylidene_s["z"].tolist() == [6, 6, 1, 1, 1, 1]
    np.testing.assert_allclose(ethylidene_t["pos"], [p for _, p in ETHYLIDENE_T[::-1]], atol=1e-6)
    np.testing.assert_allclose(store.conformer(5)["pos"], [p for _, p in SAME_Z_TRIPLET], atol=1e-6)
    # every molecule has one atom order: the z of each conformer is the z of its first conformer
    z, offsets = store.column("z"), store.column("atom_offset")
    for j in range(store.n_molecules):
        first, stop = store.molecule(j)["conformers"]
        rows = [z[offsets[c]:offsets[c + 1]].tolist() for c in range(first, stop)]
        assert all(row == rows[0] for row in rows)


def test_an_archive_is_checked_against_and_recorded_with_its_download_checksum(tmp_path):
    folder = write_layout(tmp_path / "src", GOOD)
    archive = tmp_path / "QMspin_Part1.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname="QMspin_Part1")
    digest = file_checksum(archive)
    write_record(archive, digest)
    curate_qmspin(archive, tmp_path / "s")
    assert open_store(tmp_path / "s").manifest["provenance"]["inputs"][0]["first_download_sha256"] == digest
    with tarfile.open(archive, "w:gz") as tar:  # the archive changes after its download
        tar.add(folder / "geometries_singlet", arcname="QMspin_Part1/geometries_singlet")
    with pytest.raises(TnqError, match=f"is not the {digest} recorded at its download"):
        curate_qmspin(archive, tmp_path / "t")
    assert not (tmp_path / "t").exists()
