"""Reference energies fitted by least squares: E_c ~ sum_Z n_cZ e_Z + o_Q[Q_c] + o_M[M_c].

The per-element energies e_Z are shared by every state; an ionisation energy, electron affinity or spin
gap is a property of a molecule, not of its atoms, so a state enters as one offset per molecule: o_Q per
total charge and o_M per multiplicity 2S+1. Each family has one state fixed at 0 (the neutral singlet when
present, else the most frequent), so the fit stays well posed with few charged molecules.
"""

from dataclasses import dataclass, field

import numpy as np

from tnq_core.ragged import index_dtype, ranges
from tnq_data.store.compositions import distinct_rows, element_counts, first_of_runs

#: Fits of ``TrainConfig.references``: element only, plus per-charge offsets, plus per-multiplicity offsets.
REFERENCE_FITS = ("element", "element_charge", "element_state")


@dataclass
class References:
    """Fitted references: ``atom_refs`` (max_z,) eV; offsets (eV) of the listed charges and multiplicities."""

    atom_refs: np.ndarray
    charges: list[int] = field(default_factory=list)
    charge_offsets: np.ndarray = field(default_factory=lambda: np.zeros(0))
    multiplicities: list[int] = field(default_factory=list)
    multiplicity_offsets: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def energy(self, z: np.ndarray, atom_offset: np.ndarray, total_charge: np.ndarray,
               multiplicity: np.ndarray) -> np.ndarray:
        """(C,) reference energies (eV) of conformers with atoms z[atom_offset[c]:atom_offset[c+1]]."""
        groups = compositions(z, atom_offset, total_charge, multiplicity)
        return self.group_energy(groups)[groups.group]

    def group_energy(self, groups: "Compositions") -> np.ndarray:
        """(G,) reference energies (eV) of the groups of `groups`."""
        return groups.counts @ self.atom_refs[groups.elements] \
            + _offsets(self.charges, self.charge_offsets, groups.total_charge) \
            + _offsets(self.multiplicities, self.multiplicity_offsets, groups.multiplicity)


@dataclass
class Compositions:
    """Conformers grouped by their row of the fit: atoms of each element, total charge and multiplicity.

    ``elements`` (E,) sorted; per group ``counts`` (G, E) atoms of each element, ``total_charge`` and
    ``multiplicity`` (G,); ``group`` (C,) the group of each conformer (int32, int64 past 2^31 groups). A store
    has a few groups per molecule, so the fit's matrix has G rows instead of C.
    """

    elements: np.ndarray
    counts: np.ndarray
    total_charge: np.ndarray
    multiplicity: np.ndarray
    group: np.ndarray

    def subset(self, rows: np.ndarray) -> "Compositions":
        """The compositions of the conformers `rows` (indices into `group`): their groups only, in the same
        order, and the elements those hold."""
        group = self.group[rows]
        used = np.bincount(group, minlength=len(self.counts)) > 0
        counts = self.counts[used]
        present = counts.any(axis=0)
        return Compositions(self.elements[present], counts[:, present], self.total_charge[used],
                            self.multiplicity[used], (np.cumsum(used) - 1).astype(group.dtype)[group])


def compositions(z: np.ndarray, atom_offset: np.ndarray, total_charge: np.ndarray, multiplicity: np.ndarray,
                 composition: np.ndarray | None = None) -> Compositions:
    """The conformers with atoms z[atom_offset[c]:atom_offset[c+1]] and states (C,), grouped.

    `composition` (C,), a shard's column of that name (offsets from 0: each conformer's first conformer of
    the same element counts), lets only those first conformers' atoms be counted.
    """
    if composition is not None:
        return _compositions_of_firsts(z, atom_offset, total_charge, multiplicity, composition)
    z = z[atom_offset[0]:atom_offset[-1]].astype(np.intp)
    elements = np.flatnonzero(np.bincount(z))
    atom_offset = atom_offset - atom_offset[0]
    return _grouped(elements, np.column_stack([element_counts(z, atom_offset, elements), total_charge,
                                               multiplicity]).astype(np.int64))


def _compositions_of_firsts(z: np.ndarray, atom_offset: np.ndarray, total_charge: np.ndarray,
                            multiplicity: np.ndarray, composition: np.ndarray) -> Compositions:
    """`compositions` counting only the atoms of the conformers each `composition` entry points at; total
    charges and multiplicities within int8, as in a store."""
    is_first = composition == np.arange(len(composition))
    firsts = np.flatnonzero(is_first)
    sizes = np.diff(atom_offset)[firsts]
    first_z = z[ranges(atom_offset[firsts], sizes)].astype(np.intp)
    elements = np.flatnonzero(np.bincount(first_z, minlength=1))
    counts = element_counts(first_z, np.concatenate([[0], np.cumsum(sizes)]), elements)
    slot = (np.cumsum(is_first) - 1)[composition]  # each conformer's row of `counts`
    # (slot, Q, M) packed into one int64 (Q and M are int8): runs folded, then sorted
    packed = (slot.astype(np.int64) << 16) | ((total_charge.astype(np.int64) + 128) << 8) | multiplicity.astype(np.int64)
    run = first_of_runs(packed)
    keys, group = np.unique(packed[run], return_inverse=True)
    rows = np.column_stack([counts[keys >> 16], (keys >> 8 & 255) - 128, keys & 255])
    return _grouped(elements, rows, group[np.cumsum(run) - 1])


def merge_compositions(parts: list[Compositions]) -> Compositions:
    """The groups of consecutive runs of conformers (e.g. shards), as those of all of them in order."""
    elements = np.unique(np.concatenate([part.elements for part in parts] or [np.zeros(0, np.int64)]))
    rows = np.zeros((sum(len(part.counts) for part in parts), len(elements) + 2), np.int64)
    starts = np.cumsum([0] + [len(part.counts) for part in parts])
    for start, part in zip(starts, parts):
        stop = start + len(part.counts)
        rows[start:stop, np.searchsorted(elements, part.elements)] = part.counts
        rows[start:stop, -2], rows[start:stop, -1] = part.total_charge, part.multiplicity
    merged = _grouped(elements, rows)
    # each part's groups renumbered through its slice of the merged rows: one gather per conformer
    group = np.empty(sum(len(part.group) for part in parts), merged.group.dtype)
    first = np.cumsum([0] + [len(part.group) for part in parts])
    for start, part, at in zip(starts, parts, first):
        np.take(merged.group[start:start + len(part.counts)], part.group, out=group[at:at + len(part.group)])
    merged.group = group
    return merged


def _grouped(elements: np.ndarray, rows: np.ndarray, group: np.ndarray | None = None) -> Compositions:
    """Compositions of distinct `rows` (R, E + 2): counts of `elements`, total charge, multiplicity; `group`
    (C,) the row of each conformer (each its own row when None). Group indices are int32 while they fit (half
    the memory of a store's millions of conformers)."""
    distinct, inverse = distinct_rows(rows)
    n = len(elements)
    inverse = inverse.astype(index_dtype(len(distinct)))
    return Compositions(elements, distinct[:, :n].astype(np.float64), distinct[:, n], distinct[:, n + 1],
                        inverse if group is None else inverse[group])


def _offsets(states: list[int], offsets: np.ndarray, values: np.ndarray) -> np.ndarray:
    """(C,) offset of each conformer's state; zeros when no states are listed."""
    if not states:
        return np.zeros(len(values))
    return offsets[np.searchsorted(states, values)]


def _indicators(values: np.ndarray, neutral: int, size: np.ndarray) -> tuple[list[int], int, np.ndarray]:
    """The states present among groups in states `values` (G,) of `size` (G,) conformers, the one fixed at 0
    (``neutral`` if present, else that of the most conformers) and the (G, states - 1) indicator columns of the
    others."""
    states = np.unique(values)
    conformers = np.bincount(np.searchsorted(states, values), weights=size, minlength=len(states))
    fixed = neutral if neutral in states else int(states[np.argmax(conformers)])
    free = states[states != fixed]
    return [int(s) for s in states], fixed, (values[:, None] == free[None, :]).astype(float)


def fit_references(z: np.ndarray, atom_offset: np.ndarray, energy: np.ndarray, max_z: int, fit: str,
                   total_charge: np.ndarray, multiplicity: np.ndarray) -> References:
    """References fitted on the conformers given (the training split).

    z (A,) atomic numbers and atom_offset (C+1,) of those conformers, energy (C,) eV, total_charge and
    multiplicity (C,). ``fit`` is one of :data:`REFERENCE_FITS`.
    """
    return fit_compositions(compositions(z, atom_offset, total_charge, multiplicity), energy, max_z, fit)


def fit_compositions(groups: Compositions, energy: np.ndarray, max_z: int, fit: str) -> References:
    """`fit_references` from the conformers' `groups` and their energy (C,) eV.

    Least squares over the conformers, solved over the groups: a group's row weighted by the square root of
    its size, against its mean energy, gives the same normal equations, so the same minimisers and (with
    numpy's default cut-off for C rows) the same minimum-norm solution, to rounding. Columns that the data
    cannot tell apart (e.g. doublets that are exactly the ions) share their offset by that minimum norm, which
    leaves every state seen in training with the same reference.
    """
    size = np.bincount(groups.group, minlength=len(groups.counts)).astype(np.float64)
    mean = np.bincount(groups.group, weights=energy, minlength=len(groups.counts)) / size
    families = []
    if fit in ("element_charge", "element_state"):
        families.append(_indicators(groups.total_charge, 0, size))
    if fit == "element_state":
        families.append(_indicators(groups.multiplicity, 1, size))
    weight = np.sqrt(size)
    design = np.concatenate([groups.counts] + [columns for _, _, columns in families], axis=1) * weight[:, None]
    cutoff = np.finfo(np.float64).eps * max(len(energy), design.shape[1])
    solution = np.linalg.lstsq(design, weight * mean, rcond=cutoff)[0]
    refs = References(np.zeros(max_z))
    refs.atom_refs[groups.elements] = solution[:len(groups.elements)]
    start = len(groups.elements)
    tables = []
    for states, fixed, columns in families:
        free = solution[start:start + columns.shape[1]]
        start += columns.shape[1]
        tables.append((states, np.insert(free, states.index(fixed), 0.0)))
    if tables:
        refs.charges, refs.charge_offsets = tables[0]
    if len(tables) > 1:
        refs.multiplicities, refs.multiplicity_offsets = tables[1]
    return refs
