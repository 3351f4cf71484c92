"""Train/val/test splits by molecule: every conformer (and spin state) of a molecule lands on one side."""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tnq_core.errors import TnqError
from tnq_core.ragged import ranges
from tnq_data.store.compositions import distinct_rows, first_of_runs

from .references import Compositions

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


#: Label keys: an element is its atomic number; a total charge Q, a multiplicity M and a state (Q, M) are keys
#: above every element, each family in its own range, ordered as its values.
CHARGE_KEY, MULTIPLICITY_KEY, STATE_KEY = 1_000, 2_000, 1 << 20
_KEY_BITS = 21  # every key is below 1 << 21, so (molecule, key) packs into one int64


def charge_key(total_charge: np.ndarray) -> np.ndarray:
    return CHARGE_KEY + 128 + np.asarray(total_charge, np.int64)


def multiplicity_key(multiplicity: np.ndarray) -> np.ndarray:
    return MULTIPLICITY_KEY + np.asarray(multiplicity, np.int64)


def state_key(total_charge: np.ndarray, multiplicity: np.ndarray) -> np.ndarray:
    """Keys of (total charge, multiplicity) states (int8 each), in the order of the pairs."""
    return STATE_KEY + (128 + np.asarray(total_charge, np.int64)) * 256 + np.asarray(multiplicity, np.int64)


@dataclass
class Labels:
    """What each of `n` molecules holds (elements, charges, multiplicities or states): the distinct (molecule,
    key) rows, sorted by molecule then key; `molecule` (R,), `key` (R,) int64 (`charge_key`, ...)."""

    molecule: np.ndarray
    key: np.ndarray
    n: int

    @classmethod
    def of(cls, molecule: np.ndarray, key: np.ndarray, n: int) -> "Labels":
        """The labels of (molecule, key) rows in any order, repeats allowed."""
        # np.unique, without numpy 2's slower hash table; "stable" is timsort here, which merges the sorted runs
        # that labels arrive in (a union, a molecule's groups) instead of sorting them again
        rows = np.sort((np.asarray(molecule, np.int64) << _KEY_BITS) | np.asarray(key, np.int64), kind="stable")
        rows = rows[first_of_runs(rows)]
        return cls(rows >> _KEY_BITS, rows & ((1 << _KEY_BITS) - 1), n)

    def __or__(self, other: "Labels") -> "Labels":
        return Labels.of(np.concatenate([self.molecule, other.molecule]), np.concatenate([self.key, other.key]),
                         max(self.n, other.n))

    def keys_of(self, molecules: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The keys of `molecules` (K,) one after another (N,), and the (N,) position in `molecules` of each
        key's molecule."""
        bounds = np.searchsorted(self.molecule, np.stack([molecules, np.asarray(molecules) + 1]))
        counts = bounds[1] - bounds[0]
        return self.key[ranges(bounds[0], counts)], np.repeat(np.arange(len(counts)), counts)

    def all_keys(self, molecules: np.ndarray, good: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        """(K,) bool: whether `good` (keys -> bool) holds for every key of each of `molecules`."""
        keys, owner = self.keys_of(molecules)
        return np.bincount(owner, weights=~good(keys), minlength=len(molecules)) == 0


def molecule_labels(groups: Compositions, molecule: np.ndarray) -> tuple[Labels, Labels]:
    """The elements (atomic numbers) of each molecule and its (total charge, multiplicity) states
    (`state_key`), over all its conformers.

    `groups` holds every conformer's element counts and state (`setup.store_compositions`: every atom counted,
    as nothing makes the conformers of a molecule share their atoms), `molecule` (C,) the store's column; each
    distinct (molecule, group) pair is looked at once.
    """
    n = _n_molecules(molecule)
    new_pair = np.ones(len(molecule), bool)  # a store's conformers come in runs of one (molecule, group)
    new_pair[1:] = (molecule[1:] != molecule[:-1]) | (groups.group[1:] != groups.group[:-1])
    pairs = distinct_rows(np.column_stack([molecule[new_pair], groups.group[new_pair]]).reshape(-1, 2))[0]
    owner, group = pairs[:, 0], pairs[:, 1]
    held, element = np.nonzero(groups.counts[group] > 0)
    return (Labels.of(owner[held], groups.elements[element], n),
            Labels.of(owner, state_key(groups.total_charge[group], groups.multiplicity[group]), n))


def molecule_states(states: Labels) -> Labels:
    """The total charges (`charge_key`) and multiplicities (`multiplicity_key`) of each molecule, from its
    states of `molecule_labels`."""
    pair = states.key - STATE_KEY
    return Labels.of(np.concatenate([states.molecule, states.molecule]),
                     np.concatenate([charge_key(pair // 256 - 128), multiplicity_key(pair % 256)]), states.n)


def _n_molecules(molecule: np.ndarray) -> int:
    return int(molecule.max()) + 1 if len(molecule) else 0


def spread_states(splits: dict[str, np.ndarray], states: Labels, labels: Labels,
                  minimum: int = 3) -> dict[str, np.ndarray]:
    """Swap molecules so that every (total charge, multiplicity) state that at least `minimum` molecules have
    is in each non-empty val and test split, and the test report covers every state present.

    A training molecule with the missing state moves out (the first in index order whose `labels`, elements
    and states, all have another holder in train), and a molecule of that split whose states all have another
    holder there moves into train, so the sizes stay (when there is none the split grows by one). Rarest
    states first; deterministic. `states` and `labels` come from `molecule_labels` (`labels` holding the
    charges and multiplicities of `molecule_states`).
    """
    held = labels | states
    present = np.zeros(1 << _KEY_BITS, bool)  # np.unique(held.key, return_inverse=True) through a table of keys
    present[held.key] = True
    keys, index = np.flatnonzero(present), (np.cumsum(present) - 1)[held.key]
    side = np.full(held.n, -1, np.int8)
    for number, name in enumerate(SPLITS):
        side[splits[name]] = number
    out = {name: sorted(splits[name].tolist()) for name in ("val", "test")}
    train_count = np.bincount(index[side[held.molecule] == 0], minlength=len(keys))

    def count(key_values: np.ndarray) -> np.ndarray:
        return train_count[np.searchsorted(keys, key_values)]

    state_keys, holder_count = np.unique(states.key, return_counts=True)
    for state in state_keys[np.lexsort((state_keys, holder_count))]:
        holders = states.molecule[states.key == state]
        for name in ("test", "val"):
            number = SPLITS.index(name)
            if len(holders) < minimum or not out[name] or np.any(side[holders] == number):
                continue
            candidates = holders[side[holders] == 0]
            free = candidates[held.all_keys(candidates, lambda k: count(k) > 1)]
            if not len(free):
                continue
            mover = int(free[0])
            members = np.array(out[name] + [mover])
            member_states, times = np.unique(states.keys_of(members)[0], return_counts=True)
            shared = member_states[times > 1]
            can_go = states.all_keys(members[:-1], lambda k: np.isin(k, shared))
            out[name].append(mover)
            side[mover] = number
            np.subtract.at(train_count, np.searchsorted(keys, held.keys_of(np.array([mover]))[0]), 1)
            if can_go.any():
                back = out[name].pop(int(np.argmax(can_go)))
                side[back] = 0
                np.add.at(train_count, np.searchsorted(keys, held.keys_of(np.array([back]))[0]), 1)
    return {"train": np.flatnonzero(side == 0).astype(np.int64),
            **{name: np.array(sorted(ids), np.int64) for name, ids in out.items()}}


def cover_training(splits: dict[str, np.ndarray], labels: Labels) -> dict[str, np.ndarray]:
    """Move each val/test molecule with a label (an element, a total charge, a multiplicity) that the training
    split lacks into train (in index order).

    Without this a rare element seen only outside train gets no reference energy and no learned embedding, and
    a state seen only outside train has no reference offset: predicting it is an error.
    """
    train = np.zeros(labels.n, bool)
    train[splits["train"]] = True
    train_labels = np.unique(labels.key[train[labels.molecule]])
    lacking = np.unique(labels.molecule[~np.isin(labels.key, train_labels)])
    known, moved = set(train_labels.tolist()), []
    for name in ("val", "test"):
        for j in splits[name][np.isin(splits[name], lacking)].tolist():
            held = set(labels.keys_of(np.array([j]))[0].tolist())
            if not held <= known:
                moved.append(j)
                known |= held
    if not moved:
        return splits
    out = {name: np.setdiff1d(ids, moved) for name, ids in splits.items()}
    out["train"] = np.union1d(splits["train"], moved).astype(np.int64)
    return out


def conformer_mask(molecule_of_conformer: np.ndarray, molecules: np.ndarray) -> np.ndarray:
    """(C,) bool: which conformers belong to one of `molecules`; molecule_of_conformer is the store's `molecule`
    (np.isin through a table of the molecules, 10x faster on a store's millions of conformers)."""
    member = np.zeros(max(int(molecule_of_conformer.max(initial=-1)), int(np.max(molecules, initial=-1))) + 1, bool)
    member[molecules] = True
    return member[molecule_of_conformer]


def save_splits(splits: dict[str, np.ndarray], path: Path) -> None:
    """Write the molecule indices of each split to an .npz file."""
    np.savez(path, **splits)


def load_splits(path: Path) -> dict[str, np.ndarray]:
    """The molecule indices of each split saved by `save_splits`."""
    if not Path(path).is_file():
        raise TnqError(f"no splits file {path}; is this a run directory written by tnq-train?")
    with np.load(path) as data:
        return {name: data[name] for name in SPLITS}
