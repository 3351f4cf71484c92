"""Per-element reference energies fitted by least squares: E_c ~ sum_Z n_cZ e_Z (optionally per total charge)."""

import numpy as np


def element_counts(z: np.ndarray, atom_offset: np.ndarray, elements: np.ndarray) -> np.ndarray:
    """(C, len(elements)) number of atoms of each element per conformer; z (A,), atom_offset (C+1,)."""
    n_atoms = np.diff(atom_offset)
    conformer = np.repeat(np.arange(len(n_atoms)), n_atoms)
    column = np.searchsorted(elements, z[atom_offset[0]:atom_offset[-1]])
    counts = np.zeros((len(n_atoms), len(elements)))
    np.add.at(counts, (conformer, column), 1.0)
    return counts


def _lstsq(counts: np.ndarray, energy: np.ndarray) -> np.ndarray:
    return np.linalg.lstsq(counts, energy, rcond=None)[0]


def fit_references(z: np.ndarray, atom_offset: np.ndarray, energy: np.ndarray, max_z: int,
                   total_charge: np.ndarray | None = None) -> tuple[np.ndarray, list[int]]:
    """Reference energies in eV per element, fitted on the conformers given (the training split).

    z (A,) atomic numbers and atom_offset (C+1,) of those conformers, energy (C,) eV. Without
    `total_charge`: returns ((max_z,), []). With it (C,): one fit per total charge, returns
    ((max_z, K), charges) for the K charges present; an element absent at some charge takes its
    charge-free reference there.
    """
    elements = np.unique(z)
    counts = element_counts(z, atom_offset, elements)
    overall = np.zeros(max_z)
    overall[elements] = _lstsq(counts, energy)
    if total_charge is None:
        return overall, []
    charges = sorted(int(q) for q in np.unique(total_charge))
    refs = np.repeat(overall[:, None], len(charges), axis=1)
    for k, charge in enumerate(charges):
        rows = total_charge == charge
        present = counts[rows].any(axis=0)
        refs[elements[present], k] = _lstsq(counts[rows][:, present], energy[rows])
    return refs, charges


def reference_energy(refs: np.ndarray, charges: list[int], z: np.ndarray, atom_offset: np.ndarray,
                     total_charge: np.ndarray) -> np.ndarray:
    """(C,) sum of the reference energies (eV) of each conformer's atoms, for refs from `fit_references`."""
    table = refs.reshape(len(refs), -1)
    column = np.searchsorted(charges, total_charge) if charges else np.zeros(len(total_charge), np.int64)
    n_atoms = np.diff(atom_offset)
    per_atom = table[z[atom_offset[0]:atom_offset[-1]], np.repeat(column, n_atoms)]
    return np.add.reduceat(per_atom, atom_offset[:-1] - atom_offset[0]) if len(per_atom) else np.zeros(0)
