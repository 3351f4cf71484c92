"""Train/val/test splits by molecule: every conformer (and spin state) of a molecule lands on one side."""

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
