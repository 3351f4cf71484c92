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
        n_atoms = np.diff(atom_offset)
        per_atom = self.atom_refs[z[atom_offset[0]:atom_offset[-1]]]
        atoms = np.bincount(np.repeat(np.arange(len(n_atoms)), n_atoms), weights=per_atom, minlength=len(n_atoms))
        return atoms + _offsets(self.charges, self.charge_offsets, total_charge) \
            + _offsets(self.multiplicities, self.multiplicity_offsets, multiplicity)


def element_counts(z: np.ndarray, atom_offset: np.ndarray, elements: np.ndarray) -> np.ndarray:
    """(C, len(elements)) number of atoms of each element per conformer; z (A,), atom_offset (C+1,)."""
    n_atoms = np.diff(atom_offset)
    conformer = np.repeat(np.arange(len(n_atoms)), n_atoms)
    column = np.searchsorted(elements, z[atom_offset[0]:atom_offset[-1]])
    counts = np.zeros((len(n_atoms), len(elements)))
    np.add.at(counts, (conformer, column), 1.0)
    return counts


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
    multiplicity (C,). ``fit`` is one of :data:`REFERENCE_FITS`. Columns that the data cannot tell apart
    (e.g. doublets that are exactly the ions) share their offset by least squares' minimum norm, which
    leaves every state seen in training with the same reference.
    """
    elements = np.unique(z)
    blocks = [element_counts(z, atom_offset, elements)]
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
