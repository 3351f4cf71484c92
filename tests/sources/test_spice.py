"""curate_spice on the real SPICE sample and on corrupted copies made here, checked against h5py directly."""

import hashlib
import json

import h5py
import numpy as np
import pytest

from tnq_core.errors import TnqError
from tnq_data.sources import spice
from tnq_data.sources.spice import PUBCHEM_SUBSETS, curate_spice
from tnq_data.store import open_store
from tnq_data.units import BOHR_TO_ANGSTROM, HARTREE_PER_BOHR_TO_EV_PER_ANGSTROM, HARTREE_TO_EV

PUBCHEM = "103147721"
SODIUM = "C#C.[Na+]"


def _rows(store) -> dict[str, tuple[int, int]]:
    return {row["reason"]: (row["molecules"], row["conformers"]) for row in store.tables["curation"]}


def test_sample_matches_hdf5(spice_sample, tmp_path):
    version = curate_spice(spice_sample, tmp_path / "s")
    store = open_store(tmp_path / "s")
    assert store.version == version
    assert (store.n_molecules, len(store)) == (2, 55)
    assert _rows(store) == {"kept": (2, 55)}
    with h5py.File(spice_sample) as raw:
        for index, name in enumerate(sorted(raw)):
            group = raw[name]
            molecule = store.molecule(index)
            assert molecule["source_id"] == name
            assert molecule["smiles"] == group["smiles"][0].decode()
            assert molecule["subset"] == group["subset"][0].decode()
            start, stop = molecule["conformers"]
            n_atoms = len(group["atomic_numbers"])
            conformers = [store.conformer(i) for i in range(start, stop)]
            pos = np.stack([c["pos"] for c in conformers])
            forces = np.stack([c["forces"] for c in conformers])
            np.testing.assert_allclose(pos, group["conformations"][()] * BOHR_TO_ANGSTROM, rtol=1e-6, atol=1e-6)
            np.testing.assert_allclose(forces, -group["dft_total_gradient"][()] * HARTREE_PER_BOHR_TO_EV_PER_ANGSTROM,
                                       rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose([c["energy"] for c in conformers], group["dft_total_energy"][()] * HARTREE_TO_EV,
                                       rtol=1e-12)
            np.testing.assert_allclose([c["formation_energy"] for c in conformers],
                                       group["formation_energy"][()] * HARTREE_TO_EV, rtol=1e-12)
            assert all(np.array_equal(c["z"], group["atomic_numbers"][()]) for c in conformers)
            assert {int(c["total_charge"]) for c in conformers} == {1}
            assert {int(c["multiplicity"]) for c in conformers} == {1}
            mbis = np.stack([c["charges/mbis_source"] for c in conformers])
            level = (molecule["charges_method/mbis_source"], molecule["charges_basis/mbis_source"])
            if name == PUBCHEM:
                np.testing.assert_array_equal(mbis, group["mbis_charges"][()].reshape(stop - start, n_atoms))
                assert level == ("wB97M-D3BJ", "def2-TZVPPD")
            else:
                assert name == SODIUM and np.isnan(mbis).all() and level == ("", "")
    provenance = store.manifest["provenance"]
    assert provenance["command"] == "curate spice"
    assert provenance["inputs"] == [{"name": spice_sample.name, "bytes": spice_sample.stat().st_size,
                                     "sha256": hashlib.sha256(spice_sample.read_bytes()).hexdigest()}]
    assert str(spice_sample.parent) not in json.dumps(provenance)


def test_filters_are_counted(spice_sample, tmp_path):
    curate_spice(spice_sample, tmp_path / "pubchem", subset=PUBCHEM_SUBSETS)
    assert _rows(open_store(tmp_path / "pubchem")) == {"subset": (1, 5), "kept": (1, 50)}

    curate_spice(spice_sample, tmp_path / "no_na", elements=["H", "C", "N", "O"])
    store = open_store(tmp_path / "no_na")
    assert _rows(store) == {"elements": (1, 5), "kept": (1, 50)}
    assert store.molecule(0)["source_id"] == PUBCHEM

    with h5py.File(spice_sample) as raw:
        gradients = [raw[name]["dft_total_gradient"][()] * HARTREE_PER_BOHR_TO_EV_PER_ANGSTROM for name in sorted(raw)]
    norms = np.concatenate([np.linalg.norm(g, axis=-1).max(axis=-1) for g in gradients])
    limit = float(np.median(norms))
    curate_spice(spice_sample, tmp_path / "forces", max_force=limit)
    store = open_store(tmp_path / "forces")
    n_over = int((norms > limit).sum())
    assert 0 < n_over < 55
    assert _rows(store)["max_force"][1] == n_over
    assert len(store) == 55 - n_over
    assert max(np.linalg.norm(store.conformer(i)["forces"], axis=1).max() for i in range(len(store))) <= limit


def _corrupted_copy(sample, path):
    """The sample plus broken copies of its sodium group; returns the file path."""
    with h5py.File(sample) as src, h5py.File(path, "w") as dst:
        for name in src:
            src.copy(src[name], dst, name=name)
        for broken in ("bad_shape", "nan_energy", "bad_smiles", "wrong_atoms", "no_gradient"):
            src.copy(src[SODIUM], dst, name=broken)
        del dst["bad_shape/conformations"]
        dst["bad_shape"].create_dataset("conformations", data=np.zeros((5, 4, 3), np.float32)).attrs["units"] = "bohr"
        energy = dst["nan_energy/dft_total_energy"]
        energy[1:3] = np.nan
        dst["bad_smiles/smiles"][0] = b"[H:3][C:1]#[C:2]([H:4].[Na+:5]"
        dst["wrong_atoms/smiles"][0] = b"[H:3][C:1]#[C:2][H:4].[K+:5]"
        del dst["no_gradient/dft_total_gradient"]
    return path


def test_corrupted_groups_are_dropped_and_counted(spice_sample, tmp_path):
    source = _corrupted_copy(spice_sample, tmp_path / "broken.hdf5")
    curate_spice(source, tmp_path / "s")
    store = open_store(tmp_path / "s")
    assert _rows(store) == {"missing_dataset": (1, 5), "bad_shape": (1, 5), "smiles": (2, 10), "non_finite": (0, 2),
                            "kept": (3, 58)}
    kept = [store.molecule(i)["source_id"] for i in range(store.n_molecules)]
    assert kept == sorted([PUBCHEM, SODIUM, "nan_energy"])
    assert np.isfinite(store.column("energy")).all()


def test_wrong_units_fail_with_the_dataset(spice_sample, tmp_path):
    source = tmp_path / "kcal.hdf5"
    with h5py.File(spice_sample) as src, h5py.File(source, "w") as dst:
        src.copy(src[SODIUM], dst, name=SODIUM)
        dst[SODIUM]["dft_total_energy"].attrs["units"] = "kcal/mol"
    with pytest.raises(TnqError, match=r"dft_total_energy has units 'kcal/mol', expected 'hartree'"):
        curate_spice(source, tmp_path / "s")
    assert not (tmp_path / "s" / "HEAD").exists()


def test_bad_arguments_fail_clearly(spice_sample, tmp_path):
    with pytest.raises(TnqError, match="unknown element"):
        curate_spice(spice_sample, tmp_path / "s", elements=["H", "Qq"])
    with pytest.raises(TnqError, match="not a valid regular expression"):
        curate_spice(spice_sample, tmp_path / "s", subset="(")
    with pytest.raises(TnqError, match="cannot open as HDF5"):
        curate_spice(tmp_path / "missing.hdf5", tmp_path / "s")


def test_same_version_for_one_and_two_workers(spice_sample, tmp_path, monkeypatch):
    monkeypatch.setattr(spice, "BLOCK_MOLECULES", 2)  # several blocks, so order and merging matter
    source = _corrupted_copy(spice_sample, tmp_path / "broken.hdf5")
    one = curate_spice(source, tmp_path / "one", workers=1)
    two = curate_spice(source, tmp_path / "two", workers=2)
    assert one == two
    assert open_store(tmp_path / "one").tables == open_store(tmp_path / "two").tables
