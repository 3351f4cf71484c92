"""Splits by molecule and least-squares reference energies."""

import numpy as np

from tnq_data.store import open_store
from tnq_model.references import element_counts, fit_references, reference_energy
from tnq_model.splits import conformer_mask, load_splits, save_splits, split_molecules

FRACTIONS = {"train": 0.8, "val": 0.1, "test": 0.1}


def test_splits_partition_molecules_deterministically_and_keep_conformers_together(make_store, tmp_path):
    store = open_store(make_store(50))
    splits = split_molecules(store.n_molecules, FRACTIONS, seed=4)
    assert {k: len(v) for k, v in splits.items()} == {"train": 40, "val": 5, "test": 5}
    np.testing.assert_array_equal(np.sort(np.concatenate(list(splits.values()))), np.arange(50))
    again, other = split_molecules(50, FRACTIONS, seed=4), split_molecules(50, FRACTIONS, seed=5)
    assert all(np.array_equal(splits[k], again[k]) for k in splits)
    assert not np.array_equal(splits["test"], other["test"])
    molecule = store.column("molecule")
    masks = {k: conformer_mask(molecule, v) for k, v in splits.items()}
    assert (sum(m.astype(int) for m in masks.values()) == 1).all()
    for index in splits["test"]:
        start, stop = store.molecule(int(index))["conformers"]
        assert masks["test"][start:stop].all()
    save_splits(splits, tmp_path / "splits.npz")
    assert all(np.array_equal(load_splits(tmp_path / "splits.npz")[k], splits[k]) for k in splits)


def synthetic(rng, n_conformers, refs_by_charge):
    """Conformers of random composition whose energy is the sum of known references plus small noise."""
    n_atoms = rng.integers(2, 9, n_conformers)
    offsets = np.concatenate([[0], np.cumsum(n_atoms)])
    z = rng.choice([1, 6, 8], offsets[-1])
    charge = rng.choice(sorted(refs_by_charge), n_conformers)
    table = np.stack([refs_by_charge[q] for q in sorted(refs_by_charge)], axis=1)
    energy = reference_energy(table, sorted(refs_by_charge), z, offsets, charge) + rng.normal(0, 1e-3, n_conformers)
    return z, offsets, energy, charge


def test_references_recover_the_per_element_energies():
    rng = np.random.default_rng(0)
    refs = np.zeros(10)
    refs[[1, 6, 8]] = [-13.6, -1030.0, -2040.0]
    z, offsets, energy, _ = synthetic(rng, 200, {0: refs})
    fitted, charges = fit_references(z, offsets, energy, max_z=10)
    assert charges == [] and fitted.shape == (10,)
    np.testing.assert_allclose(fitted, refs, atol=1e-3)
    counts = element_counts(z, offsets, np.array([1, 6, 8]))
    assert counts.sum() == len(z) and (counts.sum(1) == np.diff(offsets)).all()


def test_references_per_total_charge_fit_each_charge_separately():
    rng = np.random.default_rng(1)
    neutral = np.zeros(10)
    neutral[[1, 6, 8]] = [-13.0, -1000.0, -2000.0]
    cation = neutral + np.where(neutral != 0, 2.5, 0.0)
    z, offsets, energy, charge = synthetic(rng, 300, {0: neutral, 1: cation})
    fitted, charges = fit_references(z, offsets, energy, max_z=10, total_charge=charge)
    assert charges == [0, 1]
    np.testing.assert_allclose(fitted[:, 0], neutral, atol=1e-3)
    np.testing.assert_allclose(fitted[:, 1], cation, atol=1e-3)
    residual = energy - reference_energy(fitted, charges, z, offsets, charge)
    assert np.abs(residual).max() < 1e-2


def test_molecules_with_elements_missing_from_train_move_to_train():
    from tnq_model.splits import cover_elements, molecule_elements

    # three molecules: C/H, C/H/S, N/H; each conformer of a molecule has the same atoms
    z = np.array([6, 1, 6, 1, 6, 1, 16, 7, 1], dtype=np.uint8)
    atom_offset = np.array([0, 2, 4, 7, 9])
    molecule = np.array([0, 0, 1, 2])
    elements = molecule_elements(z, atom_offset, molecule)
    assert elements == [{1, 6}, {1, 6, 16}, {1, 7}]
    splits = {"train": np.array([0]), "val": np.array([1]), "test": np.array([2])}
    covered = cover_elements(splits, elements)
    assert covered["train"].tolist() == [0, 1, 2] and covered["val"].size == covered["test"].size == 0
    kept = {"train": np.array([1, 2]), "val": np.array([0]), "test": np.array([], dtype=np.int64)}
    assert cover_elements(kept, elements) is kept
