"""Splits by molecule and least-squares reference energies."""

from collections import Counter

import numpy as np
import pytest

from tnq_data.store import open_store
from tnq_model.config import ModelConfig, TrainConfig
from tnq_data.store.compositions import distinct_rows, element_counts
from tnq_model.references import compositions, fit_references
from tnq_model.setup import build_potential, new_splits, prepare_data, store_compositions
from tnq_model.splits import (Labels, charge_key, conformer_mask, cover_training, load_splits, molecule_labels,
                              molecule_states, multiplicity_key, save_splits, split_molecules, spread_states, state_key)
from tnq_model.term_estimates import estimated_term_energies

FRACTIONS = {"train": 0.8, "val": 0.1, "test": 0.1}


def as_sets(labels: Labels) -> list[set[int]]:
    """The keys of each molecule as a set."""
    sets = [set() for _ in range(labels.n)]
    for molecule, key in zip(labels.molecule.tolist(), labels.key.tolist()):
        sets[molecule].add(key)
    return sets


def labels_of(sets: list[set]) -> Labels:
    """Labels holding each molecule's set of keys, or of (charge, multiplicity) states."""
    rows = [(j, int(state_key(*x)) if isinstance(x, tuple) else x) for j, held in enumerate(sets) for x in held]
    return Labels.of(np.array([j for j, _ in rows], np.int64), np.array([k for _, k in rows], np.int64), len(sets))


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


REFS = np.zeros(10)
REFS[[1, 6, 8]] = [-13.6, -1030.0, -2040.0]


def synthetic(rng, n_conformers, charges=(0,), multiplicities=(1,), noise=1e-3):
    """Conformers of random composition (H, C, O) in random states; energy = sum of REFS + state offset + noise.

    The state offsets are 6.5 eV per unit of charge and 0.8 eV per unpaired electron (per molecule).
    """
    n_atoms = rng.integers(2, 9, n_conformers)
    offsets = np.concatenate([[0], np.cumsum(n_atoms)])
    z = rng.choice([1, 6, 8], offsets[-1])
    charge, multiplicity = rng.choice(charges, n_conformers), rng.choice(multiplicities, n_conformers)
    energy = np.bincount(np.repeat(np.arange(n_conformers), n_atoms), weights=REFS[z]) + 6.5 * np.abs(charge) \
        + 0.8 * (multiplicity - 1) + rng.normal(0, noise, n_conformers)
    return z, offsets, energy, charge, multiplicity


def test_references_recover_the_per_element_energies():
    rng = np.random.default_rng(0)
    z, offsets, energy, charge, multiplicity = synthetic(rng, 200)
    refs = fit_references(z, offsets, energy, 10, "element", charge, multiplicity)
    assert refs.charges == [] and refs.multiplicities == [] and refs.atom_refs.shape == (10,)
    np.testing.assert_allclose(refs.atom_refs, REFS, atol=1e-3)
    counts = element_counts(z, offsets, np.array([1, 6, 8]))
    assert counts.sum() == len(z) and (counts.sum(1) == np.diff(offsets)).all()


def test_state_references_are_element_energies_plus_molecular_offsets():
    rng = np.random.default_rng(1)
    z, offsets, energy, charge, multiplicity = synthetic(rng, 300, (-1, 0, 1), (1, 2, 3))
    refs = fit_references(z, offsets, energy, 10, "element_state", charge, multiplicity)
    assert refs.charges == [-1, 0, 1] and refs.multiplicities == [1, 2, 3]
    np.testing.assert_allclose(refs.atom_refs, REFS, atol=1e-3)
    np.testing.assert_allclose(refs.charge_offsets, [6.5, 0.0, 6.5], atol=1e-3)
    np.testing.assert_allclose(refs.multiplicity_offsets, [0.0, 0.8, 1.6], atol=1e-3)
    residual = energy - refs.energy(z, offsets, charge, multiplicity)
    assert np.abs(residual).max() < 1e-2


def test_distinct_rows_are_numpys_unique_rows():
    rows = np.random.default_rng(4).integers(-2, 3, (500, 4))
    distinct, inverse = distinct_rows(rows)
    expected, expected_inverse = np.unique(rows, axis=0, return_inverse=True)
    assert len(distinct) < len(rows)
    np.testing.assert_array_equal(distinct, expected)
    np.testing.assert_array_equal(inverse, expected_inverse.ravel())
    assert distinct_rows(rows[:0])[0].shape == (0, 4)


def test_the_fit_over_groups_is_the_least_squares_fit_over_conformers():
    """Conformers sharing atoms and state, in groups of 1-6 with their own noise, and states whose columns are
    collinear (the doublets are exactly the ions): the weighted fit over the groups against np.linalg.lstsq
    with one row per conformer (its default cut-off, minimum norm), as the references were fitted before."""
    rng = np.random.default_rng(3)
    z, offsets, energy, _, _ = synthetic(rng, 40)
    states = np.array([(0, 1), (1, 2), (-1, 2), (0, 3)])[rng.integers(0, 4, 40)]
    repeat = rng.integers(1, 7, 40)
    n_atoms = np.repeat(np.diff(offsets), repeat)
    z = np.concatenate([np.tile(z[a:b], k) for a, b, k in zip(offsets[:-1], offsets[1:], repeat)])
    offsets = np.concatenate([[0], np.cumsum(n_atoms)])
    charge, multiplicity = np.repeat(states[:, 0], repeat), np.repeat(states[:, 1], repeat)
    energy = np.repeat(energy + 6.5 * np.abs(states[:, 0]), repeat) + rng.normal(0, 0.05, len(n_atoms))
    elements = np.array([1, 6, 8])
    design = np.column_stack([element_counts(z, offsets, elements), charge[:, None] == [-1, 1],
                              multiplicity[:, None] == [2, 3]]).astype(float)
    assert np.linalg.matrix_rank(design) == design.shape[1] - 1
    solution = np.linalg.lstsq(design, energy, rcond=None)[0]
    refs = fit_references(z, offsets, energy, 10, "element_state", charge, multiplicity)
    assert len(compositions(z, offsets, charge, multiplicity).counts) <= 40 < len(energy)
    np.testing.assert_allclose(refs.atom_refs[elements], solution[:3], rtol=0, atol=1e-9)
    np.testing.assert_allclose(refs.charge_offsets, [solution[3], 0, solution[4]], rtol=0, atol=1e-9)
    np.testing.assert_allclose(refs.multiplicity_offsets, [0, *solution[5:]], rtol=0, atol=1e-9)
    np.testing.assert_allclose(refs.energy(z, offsets, charge, multiplicity), design @ solution, rtol=1e-13)


def test_two_cations_give_a_physical_reference_to_an_unseen_cation():
    """Per-charge element tables were minimum-norm garbage here (H at -491 eV); a molecular offset is not."""
    rng = np.random.default_rng(2)
    z, offsets, energy, charge, multiplicity = synthetic(rng, 60, noise=0.3)
    cations = np.array([6, 1, 1, 1, 1, 8, 1, 1, 6, 1, 1, 1, 8, 8]), np.array([0, 7, 14])  # CH5O+ and CH4O2+
    cation_energy = np.bincount(np.repeat([0, 1], 7), weights=REFS[cations[0]]) + [9.8, 10.9]
    z = np.concatenate([z, cations[0]])
    offsets = np.concatenate([offsets, offsets[-1] + cations[1][1:]])
    energy = np.concatenate([energy, cation_energy])
    charge, multiplicity = np.concatenate([charge, [1, 1]]), np.concatenate([multiplicity, [2, 2]])
    for fit in ("element_charge", "element_state"):
        refs = fit_references(z, offsets, energy, 10, fit, charge, multiplicity)
        unseen = np.array([8, 6, 6, 6, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1])  # C3H12O: no such cation in training
        ends = np.array([0, len(unseen)])
        cation = refs.energy(unseen, ends, np.array([1]), np.array([2]))
        neutral = refs.energy(unseen, ends, np.array([0]), np.array([1]))
        assert abs(float(cation[0] - neutral[0])) < 20.0, (fit, cation, neutral)
        assert 5.0 < float(cation[0] - neutral[0]) < 15.0


def test_element_counts_match_counting_each_conformer():
    """Packed counts against a count per conformer: empty conformers, a 3,000-atom conformer (fewer elements
    per word), more elements than fit in one word, offsets that do not start at 0."""
    rng = np.random.default_rng(2)
    for trial in range(60):
        n_atoms = rng.integers(0, 6, rng.integers(0, 8))
        if trial % 3 == 0 and len(n_atoms):
            n_atoms[rng.integers(len(n_atoms))] = 3000
        elements = np.sort(rng.choice(np.arange(1, 119), rng.integers(1, 15), replace=False))
        first = int(rng.integers(0, 4))
        z = rng.choice(elements, first + n_atoms.sum() + 2).astype(np.uint8)
        offsets = first + np.concatenate([[0], np.cumsum(n_atoms)])
        expected = [[int(np.sum(z[a:b] == e)) for e in elements] for a, b in zip(offsets[:-1], offsets[1:])]
        assert element_counts(z, offsets, elements).tolist() == expected, trial


def test_molecules_with_elements_missing_from_train_move_to_train():
    # three molecules: C/H, C/H/S, N/H; each conformer of a molecule has the same atoms
    z = np.array([6, 1, 6, 1, 6, 1, 16, 7, 1], dtype=np.uint8)
    atom_offset = np.array([0, 2, 4, 7, 9])
    molecule, state = np.array([0, 0, 1, 2]), np.array([0, 0, 0, 0])
    elements = molecule_labels(compositions(z, atom_offset, state, state + 1), molecule)[0]
    assert as_sets(elements) == [{1, 6}, {1, 6, 16}, {1, 7}]
    splits = {"train": np.array([0]), "val": np.array([1]), "test": np.array([2])}
    covered = cover_training(splits, elements)
    assert covered["train"].tolist() == [0, 1, 2] and covered["val"].size == covered["test"].size == 0
    kept = {"train": np.array([1, 2]), "val": np.array([0]), "test": np.array([], dtype=np.int64)}
    assert cover_training(kept, elements) is kept


def test_molecules_with_states_missing_from_train_move_to_train():
    # three molecules: neutral singlets; a cation doublet and neutral singlet; an anion doublet
    charge, multiplicity = np.array([0, 0, 1, 0, -1]), np.array([1, 1, 2, 1, 2])
    groups = compositions(np.ones(5, np.uint8), np.arange(6), charge, multiplicity)
    states = molecule_states(molecule_labels(groups, np.array([0, 0, 1, 1, 2]))[1])
    q, m = charge_key, multiplicity_key
    assert as_sets(states) == [{q(0), m(1)}, {q(1), q(0), m(2), m(1)}, {q(-1), m(2)}]
    splits = {"train": np.array([0, 1]), "val": np.array([2]), "test": np.array([], dtype=np.int64)}
    assert cover_training(splits, states)["train"].tolist() == [0, 1, 2]


def test_spread_states_puts_every_state_of_three_molecules_in_val_and_test():
    # 10 molecules: 0-6 neutral singlets, 7-9 the only triplets; a random split left every triplet in train
    pairs = [{(0, 1)}] * 7 + [{(0, 3)}] * 3
    labels = [{6, 1}] * 10
    splits = {"train": np.array([2, 3, 4, 5, 7, 8, 9]), "val": np.array([0, 6]), "test": np.array([1])}
    spread = spread_states(splits, labels_of(pairs), labels_of(labels))
    # val swaps a singlet for a triplet; test's only molecule is its only singlet, so test grows by one
    assert {k: len(v) for k, v in spread.items()} == {"train": 6, "val": 2, "test": 2}
    for name in ("val", "test"):
        assert {(0, 3), (0, 1)} & set().union(*(pairs[j] for j in spread[name])) >= {(0, 3)}, name
    assert any(pairs[j] == {(0, 3)} for j in spread["train"]), "train keeps a triplet"
    assert any(pairs[j] == {(0, 1)} for j in spread["test"]), "test keeps its singlet"
    np.testing.assert_array_equal(np.sort(np.concatenate(list(spread.values()))), np.arange(10))


def test_spread_states_leaves_rare_states_and_training_labels_alone():
    # a state of two molecules stays where it is; a triplet whose element only it has never leaves train
    pairs = [{(0, 1)}] * 6 + [{(1, 2)}] * 2 + [{(0, 3)}] * 3
    labels = [{6}] * 8 + [{6, 9}, {6}, {6}]
    splits = {"train": np.array([0, 1, 2, 6, 7, 8, 9, 10]), "val": np.array([3, 4]), "test": np.array([5])}
    spread = spread_states(splits, labels_of(pairs), labels_of(labels))
    assert set(spread["train"].tolist()) >= {6, 7, 8}, "the cation pair stays; the fluorine triplet stays"
    assert 9 in spread["test"] and 10 in spread["val"]


def test_per_molecule_labels_match_a_reading_conformer_by_conformer(make_store):
    """The vectorised labels against sets filled one conformer at a time; the random store's conformers of a
    molecule have different atoms, so every conformer has to be read."""
    store = open_store(make_store(60, seed=3, shard_bytes=1500))
    elements, states, pairs = [set() for _ in range(60)], [set() for _ in range(60)], [set() for _ in range(60)]
    for c, molecule in enumerate(store.column("molecule")):
        record = store.conformer(c)
        q, m = int(record["total_charge"]), int(record["multiplicity"])
        elements[molecule] |= set(record["z"].tolist())
        states[molecule] |= {("charge", q), ("multiplicity", m)}
        pairs[molecule].add((q, m))
    assert store.n_shards > 3 and any(len({store.conformer(c)["z"].tobytes() for c in range(*store.molecule(j)[
        "conformers"])}) > 1 for j in range(60)), "shards and molecules whose conformers differ"
    labels = molecule_labels(store_compositions(store), store.column("molecule"))
    assert [as_sets(one) for one in labels] == [elements, as_sets(labels_of(pairs))]
    assert as_sets(molecule_states(labels[1])) == [{charge_key(x[1]) if x[0] == "charge" else multiplicity_key(x[1])
                                                    for x in held} for held in states]
    whole = compositions(store.column("z"), store.column("atom_offset"), store.column("total_charge"),
                         store.column("multiplicity"))
    assert [as_sets(one) for one in molecule_labels(whole, store.column("molecule"))] == [as_sets(one) for one in labels]
    assert [as_sets(one) for one in molecule_labels(whole.subset(np.arange(0)), np.zeros(0, np.int64))] == [[], []]


@pytest.mark.parametrize("physics", [[], ["charges", "coulomb", "zbl"]])
def test_setup_read_shard_by_shard_matches_the_whole_columns(make_store, tmp_path, physics):
    """References and scales fitted shard by shard against the same fit on whole columns: references exact
    (the same groups), scales to float64 rounding (sums in another order)."""
    path = make_store(80, seed=5, shard_bytes=2000, charges="mbis")
    config = TrainConfig(store=path, out=tmp_path / "run", model=ModelConfig(
        hidden_channels=8, num_layers=1, num_rbf=4, physics=physics), charge_target="charges/mbis" if physics else None)
    setup = prepare_data(config, None)
    potential, scales = build_potential(config, setup)
    store, train = setup.store, setup.selected["train"]
    assert store.n_shards > 3 and 0 < train.sum() < len(train)
    offsets, rows = store.column("atom_offset"), np.flatnonzero(train)
    atom_rows = np.repeat(train, np.diff(offsets))
    n_atoms = np.diff(offsets)[rows]
    sub = np.concatenate([[0], np.cumsum(n_atoms)])
    z, charge, multiplicity = store.column("z")[atom_rows], store.column("total_charge")[rows], \
        store.column("multiplicity")[rows]
    energy = store.column("energy")[rows] - estimated_term_energies(potential.model.terms, z, store.column("pos")[
        atom_rows], sub, charge)
    assert bool(physics) == bool(np.any(energy != store.column("energy")[rows]))
    refs = fit_references(z, sub, energy, 128, "element_state", charge, multiplicity)
    np.testing.assert_array_equal(potential.atom_refs[:, 0].numpy(), refs.atom_refs)
    np.testing.assert_array_equal(potential.charge_offsets.numpy().ravel(), refs.charge_offsets)
    np.testing.assert_array_equal(potential.multiplicity_offsets.numpy().ravel(), refs.multiplicity_offsets)
    residual = energy - refs.energy(z, sub, charge, multiplicity)
    force_rms = np.sqrt(np.mean(store.column("forces")[atom_rows].astype(np.float64) ** 2))
    charge_rms = np.sqrt(np.mean(store.column("charges/mbis")[atom_rows].astype(np.float64) ** 2)) if physics else 1.0
    np.testing.assert_allclose([scales.energy, scales.forces, scales.charges, float(potential.scale)],
                               [np.sqrt(np.mean((residual / n_atoms) ** 2)), force_rms, charge_rms, force_rms],
                               rtol=1e-13)
    assert scales.charges != 1.0 or not physics


def test_force_and_charge_scales_come_from_whole_shards_until_enough_atoms(make_store, tmp_path):
    """The scales' mean squares stop at the first shard that brings `enough` training atoms: one shard's RMS
    with enough=1, every shard's with enough at least the training atoms."""
    from tnq_model.setup import _training_mean_squares

    path = make_store(80, seed=5, shard_bytes=2000, charges="mbis")
    config = TrainConfig(store=path, out=tmp_path / "run", charge_target="charges/mbis",
                         model=ModelConfig(physics=["charges"]))
    setup = prepare_data(config, None)
    train = setup.selected["train"]
    per_shard = []
    for shard in setup.store.iter_shards(["forces", "charges/mbis"]):
        atoms = np.repeat(train[shard.first_conformer:shard.first_conformer + shard.n_conformers],
                          np.diff(shard.arrays["atom_offset"]))
        if atoms.any():
            per_shard.append((shard.arrays["forces"][atoms].astype(np.float64),
                              shard.arrays["charges/mbis"][atoms].astype(np.float64)))
    forces, charges = _training_mean_squares(config, setup, enough=1)
    one = [(np.sqrt(np.mean(f ** 2)), np.sqrt(np.mean(q[np.isfinite(q)] ** 2))) for f, q in per_shard]
    assert len(per_shard) > 3 and any(np.allclose((forces.scale(), charges.scale()), rms, rtol=1e-12) for rms in one)
    every = [np.concatenate(part) for part in zip(*per_shard)]
    forces, charges = _training_mean_squares(config, setup, enough=len(every[1]))
    np.testing.assert_allclose([forces.scale(), charges.scale()],
                               [np.sqrt(np.mean(every[0] ** 2)), np.sqrt(np.mean(every[1][np.isfinite(every[1])] ** 2))],
                               rtol=1e-12)
    assert not any(np.isclose(forces.scale(), rms[0], rtol=1e-9) for rms in one)


def test_spread_order_visits_every_shard_and_spreads_each_power_of_two_prefix_evenly():
    """The first 2^m shards of the order are the evenly spaced floor(i n / 2^m): a store's subsets, written one
    after another, are each sampled by a prefix."""
    from tnq_model.setup import spread_order

    for n in range(1, 130):
        order = spread_order(n)
        assert sorted(order) == list(range(n)), n
        for m in range(n.bit_length()):
            if 2 ** m <= n:
                assert sorted(order[:2 ** m]) == [i * n // 2 ** m for i in range(2 ** m)], (n, m)


def test_new_splits_keep_their_molecules(make_store):
    """The splits a seed draws on this store, as drawn before setup read it shard by shard (pinned)."""
    store = open_store(make_store(30, seed=7, shard_bytes=1500))
    splits = new_splits(store, TrainConfig(store=store.root).split, store_compositions(store), store.column("molecule"))
    assert {name: ids.tolist() for name, ids in splits.items()} == {
        "train": [0, 4, 6, 7, 8, 9, 10, 12, 13, 14, 15, 16, 17, 18, 19, 23, 24, 25, 27, 28, 29],
        "val": [1, 5, 11, 22, 26], "test": [2, 3, 20, 21]}


def _reference_splits(splits: dict[str, np.ndarray], elements: list[set], pairs: list[set]) -> dict[str, np.ndarray]:
    """cover_training then spread_states as their docstrings say, with one Python set per molecule."""
    labels = [e | {("charge", q) for q, _ in p} | {("multiplicity", m) for _, m in p} for e, p in zip(elements, pairs)]
    train = set().union(*(labels[j] for j in splits["train"]))
    moved = []
    for name in ("val", "test"):
        for j in splits[name].tolist():
            if not labels[j] <= train:
                moved.append(j)
                train |= labels[j]
    out = {name: [j for j in ids.tolist() if j not in moved] for name, ids in splits.items()}
    out["train"] = sorted(out["train"] + moved)
    holders = {state: [j for j in range(len(pairs)) if state in pairs[j]] for state in set().union(*pairs)}
    counts = Counter(x for j in out["train"] for x in labels[j] | pairs[j])
    for state in sorted(holders, key=lambda st: (len(holders[st]), st)):
        for name in ("test", "val"):
            if len(holders[state]) < 3 or not out[name] or any(state in pairs[j] for j in out[name]):
                continue
            mover = next((j for j in holders[state] if j in out["train"] and all(counts[x] > 1 for x in labels[j] | pairs[j])), None)
            if mover is None:
                continue
            there = Counter(x for j in out[name] + [mover] for x in pairs[j])
            back = next((j for j in out[name] if all(there[x] > 1 for x in pairs[j])), None)
            out["train"].remove(mover)
            out[name].append(mover)
            counts.subtract(labels[mover] | pairs[mover])
            if back is not None:
                out[name].remove(back)
                out["train"].append(back)
                counts.update(labels[back] | pairs[back])
    return {name: sorted(ids) for name, ids in out.items()}


def test_new_splits_equal_one_set_per_molecule_on_random_stores():
    """The array splits (cover, then spread) against the same rules on Python sets, on random molecules with
    rare elements and states, where both steps move molecules."""
    rng = np.random.default_rng(11)
    moves = 0
    for trial in range(150):
        n = int(rng.integers(1, 50))
        molecule = np.repeat(np.arange(n), rng.integers(1, 4, n))
        sizes = rng.integers(1, 5, len(molecule))
        z = rng.choice([1, 6, 7, 8, 9, 16, 35], sizes.sum(), p=[.4, .3, .1, .1, .04, .03, .03]).astype(np.uint8)
        charge = rng.choice([-1, 0, 1, 2], len(molecule), p=[.1, .7, .15, .05])
        multiplicity = rng.choice([1, 2, 3], len(molecule), p=[.7, .2, .1])
        groups = compositions(z, np.r_[0, np.cumsum(sizes)], charge, multiplicity)
        elements, states = molecule_labels(groups, molecule)
        labels = elements | molecule_states(states)
        drawn = split_molecules(n, {"train": 0.6, "val": 0.2, "test": 0.2}, trial)
        got = spread_states(cover_training(drawn, labels), states, labels)
        pairs = [set() for _ in range(n)]
        for j, q, m in zip(molecule, charge, multiplicity):
            pairs[j].add((int(q), int(m)))
        expected = _reference_splits(drawn, as_sets(elements), pairs)
        assert {name: ids.tolist() for name, ids in got.items()} == expected, trial
        moves += any(got[name].tolist() != drawn[name].tolist() for name in got)
    assert moves > 50
