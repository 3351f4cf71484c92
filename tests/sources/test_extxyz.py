"""import_xyz on extended XYZ files written here: values, molecule grouping, defaults and refusals."""

import numpy as np
import pytest

from tnq_core.errors import TnqError
from tnq_data.sources.extxyz import import_xyz
from tnq_data.store import open_store

WATER = [("O", (0.0, 0.0, 0.1173)), ("H", (0.0, 0.7572, -0.4692)), ("H", (0.0, -0.7572, -0.4692))]


def frame(info: str, atoms=WATER, forces=True, shift=0.0) -> str:
    """One extended XYZ frame; positions shifted by `shift` Å, forces = 0.1 * index."""
    props = "Properties=species:S:1:pos:R:3" + (":forces:R:3" if forces else "")
    lines = [str(len(atoms)), f'{props} {info} pbc="F F F"']
    for i, (symbol, xyz) in enumerate(atoms):
        values = [c + shift for c in xyz] + ([0.1 * i, -0.1 * i, 0.05] if forces else [])
        lines.append(f"{symbol} " + " ".join(f"{v:.6f}" for v in values))
    return "\n".join(lines) + "\n"


def test_values_and_one_molecule_per_frame(tmp_path):
    path = tmp_path / "water.xyz"
    path.write_text(frame("energy=-2079.5 charge=0 multiplicity=1") +
                    frame("energy=-2070.25 charge=1 multiplicity=2", shift=0.5))
    version = import_xyz([path], tmp_path / "s")
    store = open_store(tmp_path / "s")
    assert store.version == version and store.n_molecules == 2 and len(store) == 2
    first, second = store.conformer(0), store.conformer(1)
    assert first["energy"] == -2079.5 and second["energy"] == -2070.25
    assert (int(first["total_charge"]), int(first["multiplicity"])) == (0, 1)
    assert (int(second["total_charge"]), int(second["multiplicity"])) == (1, 2)
    np.testing.assert_allclose(second["pos"], np.array([xyz for _, xyz in WATER]) + 0.5, atol=1e-6)
    np.testing.assert_allclose(first["forces"][2], [0.2, -0.2, 0.05], atol=1e-6)
    assert first["z"].tolist() == [8, 1, 1]
    assert [store.molecule(i)["source_id"] for i in range(2)] == ["water.xyz:0", "water.xyz:1"]
    assert store.tables["curation"] == [{"reason": "kept", "molecules": 2, "conformers": 2}]


def test_molecule_key_groups_frames_across_files(tmp_path):
    a, b = tmp_path / "a.xyz", tmp_path / "b.xyz"
    a.write_text(frame("E=-1.0 q=0 mult=1 mol=w1") + frame("E=-2.0 q=0 mult=3 mol=w2", forces=True))
    b.write_text(frame("E=-3.0 q=0 mult=1 mol=w1", shift=0.1))
    import_xyz([a, b], tmp_path / "s", charge_key="q", spin_key="mult", energy_key="E", molecule_key="mol")
    store = open_store(tmp_path / "s")
    assert store.n_molecules == 2
    assert store.molecule(0)["source_id"] == "w1" and store.molecule(0)["conformers"] == (0, 2)
    assert store.column("energy").tolist() == [-1.0, -3.0, -2.0]
    assert store.column("multiplicity").tolist() == [1, 1, 3]


def test_missing_charge_is_an_error_unless_defaulted(tmp_path):
    path = tmp_path / "bare.xyz"
    path.write_text(frame("energy=-1.0 charge=0 multiplicity=1") + frame("energy=-1.5", forces=True))
    with pytest.raises(TnqError, match=r"bare.xyz: frame 1 has no 'charge'.*`default_charge`"):
        import_xyz([path], tmp_path / "s")
    import_xyz([path], tmp_path / "s", default_charge=-1, default_multiplicity=2)
    store = open_store(tmp_path / "s")
    assert store.column("total_charge").tolist() == [0, -1]
    assert store.column("multiplicity").tolist() == [1, 2]


def test_parity_violation_names_the_frame(tmp_path):
    path = tmp_path / "odd.xyz"
    path.write_text(frame("energy=-1.0 charge=0 multiplicity=1") + frame("energy=-1.0 charge=1 multiplicity=1"))
    with pytest.raises(TnqError, match=r"odd.xyz: frame 1: 9 electrons \(charge 1\) cannot have multiplicity 1"):
        import_xyz([path], tmp_path / "s")
    assert not (tmp_path / "s" / "HEAD").exists()


@pytest.mark.parametrize("text, message", [
    (frame("energy=-1.0 charge=0.5 multiplicity=1"), "'charge'=0.5 is not an integer"),
    (frame("charge=0 multiplicity=1"), "frame 0 has no 'energy'"),
    (frame("energy=-1 charge=0 multiplicity=1") + frame("energy=-1 charge=0 multiplicity=1", forces=False),
     "forces .* present in some frames"),
    ("3\nnot an extxyz line\nO 0 0\n", "cannot read as extended XYZ"),
])
def test_bad_frames_fail_clearly(tmp_path, text, message):
    path = tmp_path / "bad.xyz"
    path.write_text(text)
    with pytest.raises(TnqError, match=message):
        import_xyz([path], tmp_path / "s")
