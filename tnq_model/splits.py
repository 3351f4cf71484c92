"""Train/val/test splits by molecule: every conformer (and spin state) of a molecule lands on one side."""

import itertools
from collections import Counter
from pathlib import Path

import numpy as np

from tnq_core.errors import TnqError

from .references import Compositions, distinct_rows

SPLITS = ("train", "val", "test")


def split_molecules(n_molecules: int, fractions: dict[str, float], seed: int) -> dict[str, np.ndarray]:
    """Sorted molecule indices of each split, from a permutation drawn with `seed`.

    `fractions` maps "train"/"val"/"test" to fractions summing to 1; sizes are rounded down except
    train, which takes the rest.
    """
    order = np.random.default_rng(seed).permutation(n_molecules)
    n_val = int(fractions["val"] * n_molecules)
    n_test = int(fractions["test"] * n_molecules)
    parts = {"val": order[:n_val], "test": order[n_val:n_val + n_test], "train": order[n_val + n_test:]}
    return {name: np.sort(parts[name]).astype(np.int64) for name in SPLITS}


def molecule_labels(groups: Compositions, molecule: np.ndarray) -> tuple[list[set[int]], list[set[tuple[int, int]]]]:
    """The atomic numbers of each molecule and its (total charge, multiplicity) pairs, over all its conformers.

    `groups` holds every conformer's element counts and state (`setup.store_compositions`: every atom read, as
    nothing makes the conformers of a molecule share their atoms), `molecule` (C,) the store's column; each
    distinct (molecule, group) pair is looked at once.
    """
    n = _n_molecules(molecule)
    pairs = distinct_rows(np.column_stack([molecule, groups.group]))[0]
    owner, group = pairs[:, 0], pairs[:, 1]
    held, element = np.nonzero(groups.counts[group] > 0)
    states = list(zip(groups.total_charge[group].tolist(), groups.multiplicity[group].tolist()))
    return (_sets_per_row(owner[held], groups.elements[element].tolist(), n), _sets_per_row(owner, states, n))


def molecule_states(pairs: list[set[tuple[int, int]]]) -> list[set[tuple[str, int]]]:
    """The electronic states of each molecule as {("charge", Q), ("multiplicity", M), ...}, from the (Q, M)
    pairs of `molecule_labels`."""
    return [{("charge", q) for q, _ in held} | {("multiplicity", m) for _, m in held} for held in pairs]


def _n_molecules(molecule: np.ndarray) -> int:
    return int(molecule.max()) + 1 if len(molecule) else 0


def _sets_per_row(rows: np.ndarray, values: list, n_rows: int) -> list[set]:
    """[{values[i] for i with rows[i] == r} for r < n_rows]; `rows` sorted."""
    bounds = np.searchsorted(rows, np.arange(n_rows + 1)).tolist()
    return [set(values[a:b]) for a, b in itertools.pairwise(bounds)]


def spread_states(splits: dict[str, np.ndarray], pairs: list[set[tuple[int, int]]], labels: list[set],
                  minimum: int = 3) -> dict[str, np.ndarray]:
    """Swap molecules so that every (total charge, multiplicity) state that at least `minimum` molecules have
    is in each non-empty val and test split, and the test report covers every state present.

    A training molecule with the missing state moves out (the first in index order whose `labels`, elements
    and states, all have another holder in train), and a molecule of that split whose states all have another
    holder there moves into train, so the sizes stay (when there is none the split grows by one). Rarest
    states first; deterministic.
    """
    out = {name: sorted(int(j) for j in ids) for name, ids in splits.items()}
    holders: dict[tuple[int, int], list[int]] = {}
    for j, held in enumerate(pairs):
        for state in held:
            holders.setdefault(state, []).append(j)
    side = {j: name for name, ids in out.items() for j in ids}
    train_count = Counter(x for j in out["train"] for x in labels[j] | pairs[j])
    for state in sorted(holders, key=lambda st: (len(holders[st]), st)):
        for name in ("test", "val"):
            if len(holders[state]) < minimum or not out[name] or any(state in pairs[j] for j in out[name]):
                continue
            mover = next((j for j in holders[state] if side[j] == "train"
                          and all(train_count[x] > 1 for x in labels[j] | pairs[j])), None)
            if mover is None:
                continue
            count = Counter(x for j in out[name] + [mover] for x in pairs[j])
            back = next((j for j in out[name] if all(count[x] > 1 for x in pairs[j])), None)
            out["train"].remove(mover)
            out[name].append(mover)
            side[mover] = name
            train_count.subtract(labels[mover] | pairs[mover])
            if back is not None:
                out[name].remove(back)
                out["train"].append(back)
                side[back] = "train"
                train_count.update(labels[back] | pairs[back])
    return {name: np.array(sorted(ids), np.int64) for name, ids in out.items()}


def cover_training(splits: dict[str, np.ndarray], labels: list[set]) -> dict[str, np.ndarray]:
    """Move each val/test molecule with a label (an element, a total charge, a multiplicity) that the training
    split lacks into train (in index order).

    Without this a rare element seen only outside train gets no reference energy and no learned embedding, and
    a state seen only outside train has no reference offset: predicting it is an error.
    """
    train_labels = set().union(*(labels[j] for j in splits["train"]))
    moved = []
    for name in ("val", "test"):
        for j in splits[name].tolist():
            if not labels[j] <= train_labels:
                moved.append(j)
                train_labels |= labels[j]
    if not moved:
        return splits
    out = {name: np.setdiff1d(ids, moved) for name, ids in splits.items()}
    out["train"] = np.union1d(splits["train"], moved).astype(np.int64)
    return out


def conformer_mask(molecule_of_conformer: np.ndarray, molecules: np.ndarray) -> np.ndarray:
    """(C,) bool: which conformers belong to one of `molecules`; molecule_of_conformer is the store's `molecule`."""
    return np.isin(molecule_of_conformer, molecules)


def save_splits(splits: dict[str, np.ndarray], path: Path) -> None:
    """Write the molecule indices of each split to an .npz file."""
    np.savez(path, **splits)


def load_splits(path: Path) -> dict[str, np.ndarray]:
    """The molecule indices of each split saved by `save_splits`."""
    if not Path(path).is_file():
        raise TnqError(f"no splits file {path}; is this a run directory written by tnq-train?")
    with np.load(path) as data:
        return {name: data[name] for name in SPLITS}
