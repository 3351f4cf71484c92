"""Reference energies fitted by least squares: E_c ~ sum_Z n_cZ e_Z + o_Q[Q_c] + o_M[M_c].

The per-element energies e_Z are shared by every state; an ionisation energy, electron affinity or spin
gap is a property of a molecule, not of its atoms, so a state enters as one offset per molecule: o_Q per
total charge and o_M per multiplicity 2S+1. Each family has one state fixed at 0 (the neutral singlet when
present, else the most frequent), so the fit stays well posed with few charged molecules.
"""

from dataclasses import dataclass, field

import numpy as np

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
        elements = np.unique(z[atom_offset[0]:atom_offset[-1]])
        return self.counted_energy(element_counts(z, atom_offset, elements), elements, total_charge, multiplicity)

    def counted_energy(self, counts: np.ndarray, elements: np.ndarray, total_charge: np.ndarray,
                       multiplicity: np.ndarray) -> np.ndarray:
        """(C,) reference energies (eV) of conformers with `counts` (C, E) atoms of each of `elements` (E,)."""
        return counts @ self.atom_refs[elements] + _offsets(self.charges, self.charge_offsets, total_charge) \
            + _offsets(self.multiplicities, self.multiplicity_offsets, multiplicity)


def element_counts(z: np.ndarray, atom_offset: np.ndarray, elements: np.ndarray) -> np.ndarray:
    """(C, len(elements)) float64 number of atoms of each element per conformer; z (A,), atom_offset (C+1,);
    `elements` sorted, holding every z read."""
    n_atoms = np.diff(atom_offset)
    cell = np.repeat(np.arange(len(n_atoms)) * len(elements), n_atoms) \
        + np.searchsorted(elements, z[atom_offset[0]:atom_offset[-1]])
    return np.bincount(cell, minlength=len(n_atoms) * len(elements)).reshape(len(n_atoms), len(elements)) \
        .astype(np.float64)


def stack_counts(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """The sorted elements (E,) of all `parts` and their (C, E) counts; `parts` are (elements, counts) of
    consecutive runs of conformers, as `element_counts` gives them."""
    elements = np.unique(np.concatenate([e for e, _ in parts] or [np.zeros(0, np.int64)]))
    counts = np.zeros((sum(len(c) for _, c in parts), len(elements)))
    start = 0
    for part_elements, part_counts in parts:
        counts[start:start + len(part_counts), np.searchsorted(elements, part_elements)] = part_counts
        start += len(part_counts)
    return elements, counts


def _offsets(states: list[int], offsets: np.ndarray, values: np.ndarray) -> np.ndarray:
    """(C,) offset of each conformer's state; zeros when no states are listed."""
    if not states:
        return np.zeros(len(values))
    return offsets[np.searchsorted(states, values)]


def _indicators(values: np.ndarray, neutral: int) -> tuple[list[int], int, np.ndarray]:
    """The states present, the one fixed at 0 (``neutral`` if present, else the most frequent) and the
    (C, states - 1) indicator columns of the others."""
    states, counts = np.unique(values, return_counts=True)
    fixed = neutral if neutral in states else int(states[np.argmax(counts)])
    free = states[states != fixed]
    return [int(s) for s in states], fixed, (values[:, None] == free[None, :]).astype(float)


def fit_references(z: np.ndarray, atom_offset: np.ndarray, energy: np.ndarray, max_z: int, fit: str,
                   total_charge: np.ndarray, multiplicity: np.ndarray) -> References:
    """References fitted on the conformers given (the training split).

    z (A,) atomic numbers and atom_offset (C+1,) of those conformers, energy (C,) eV, total_charge and
    multiplicity (C,). ``fit`` is one of :data:`REFERENCE_FITS`.
    """
    elements = np.unique(z)
    return fit_counted_references(element_counts(z, atom_offset, elements), elements, energy, max_z, fit,
                                  total_charge, multiplicity)


def fit_counted_references(counts: np.ndarray, elements: np.ndarray, energy: np.ndarray, max_z: int, fit: str,
                           total_charge: np.ndarray, multiplicity: np.ndarray) -> References:
    """`fit_references` from the conformers' (C, E) `counts` of atoms of each of `elements` (E,), sorted.

    Columns that the data cannot tell apart (e.g. doublets that are exactly the ions) share their offset by
    least squares' minimum norm, which leaves every state seen in training with the same reference.
    """
    blocks = [counts]
    families = []
    if fit in ("element_charge", "element_state"):
        families.append(_indicators(total_charge, 0))
    if fit == "element_state":
        families.append(_indicators(multiplicity, 1))
    blocks += [columns for _, _, columns in families]
    solution = np.linalg.lstsq(np.concatenate(blocks, axis=1), energy, rcond=None)[0]
    refs = References(np.zeros(max_z))
    refs.atom_refs[elements] = solution[:len(elements)]
    start = len(elements)
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
