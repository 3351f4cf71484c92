"""Train/val/test splits by molecule: every conformer (and spin state) of a molecule lands on one side."""

from collections import Counter
from pathlib import Path

import numpy as np

from tnq_core.errors import TnqError

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


def molecule_elements(z: np.ndarray, atom_offset: np.ndarray, molecule: np.ndarray) -> list[set[int]]:
    """The set of atomic numbers of each molecule; store columns `z` (A,), `atom_offset` (C+1,), `molecule` (C,)."""
    molecule_of_atom = np.repeat(molecule, np.diff(atom_offset))
    pairs = np.unique(molecule_of_atom * 256 + z.astype(np.int64))
    elements: list[set[int]] = [set() for _ in range(int(molecule.max()) + 1 if len(molecule) else 0)]
    for pair in pairs.tolist():
        elements[pair // 256].add(pair % 256)
    return elements


def molecule_states(total_charge: np.ndarray, multiplicity: np.ndarray, molecule: np.ndarray) -> list[set[tuple[str, int]]]:
    """The electronic states of each molecule as {("charge", Q), ("multiplicity", M), ...}; store columns (C,)."""
    states: list[set[tuple[str, int]]] = [set() for _ in range(int(molecule.max()) + 1 if len(molecule) else 0)]
    for name, values in (("charge", total_charge), ("multiplicity", multiplicity)):
        for j, value in np.unique(np.stack([molecule, values.astype(np.int64)], axis=1), axis=0).tolist():
            states[j].add((name, value))
    return states


def molecule_state_pairs(total_charge: np.ndarray, multiplicity: np.ndarray,
                         molecule: np.ndarray) -> list[set[tuple[int, int]]]:
    """The (total charge, multiplicity) pairs each molecule has; store columns (C,)."""
    pairs: list[set[tuple[int, int]]] = [set() for _ in range(int(molecule.max()) + 1 if len(molecule) else 0)]
    rows = np.stack([molecule, total_charge.astype(np.int64), multiplicity.astype(np.int64)], axis=1)
    for j, q, m in np.unique(rows, axis=0).tolist():
        pairs[j].add((q, m))
    return pairs


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
