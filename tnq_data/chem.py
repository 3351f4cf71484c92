"""RDKit helpers: atom-mapped SMILES to molecules, formal charge, multiplicity and electron-parity checks."""

import numpy as np
from rdkit import Chem, rdBase

from tnq_core.errors import TnqError


def mol_from_mapped_smiles(smiles: str) -> Chem.Mol:
    """Parse an atom-mapped SMILES with explicit hydrogens; atoms reordered so that atom i has map number i+1.

    Hydrogens are kept as written (no implicit H is added or removed). Raises `TnqError` when RDKit cannot
    parse the SMILES or the map numbers are not exactly 1..N.
    """
    mol, table = _parse_mapped(smiles)
    return Chem.RenumberAtoms(mol, np.argsort(table[:, 0]).tolist())


def mapped_smiles_summary(smiles: str) -> tuple[np.ndarray, int, int]:
    """(atomic numbers (N,) in map order, total charge in e, multiplicity) of an atom-mapped SMILES.

    The same values as `mol_from_mapped_smiles` followed by `atomic_numbers`, `formal_charge` and
    `multiplicity_from_smiles`, from one pass over the atoms (the hot path of curation).
    """
    mol, table = _parse_mapped(smiles)
    return table[np.argsort(table[:, 0]), 1], formal_charge(mol), int(table[:, 2].sum()) + 1


def _parse_mapped(smiles: str) -> tuple[Chem.Mol, np.ndarray]:
    """The molecule in SMILES order and its atom table (N, 3): map number, atomic number, radical electrons."""
    params = Chem.SmilesParserParams()
    params.removeHs = False
    with rdBase.BlockLogs():
        mol = Chem.MolFromSmiles(smiles, params)
    if mol is None:
        raise TnqError(f"RDKit cannot parse the SMILES {smiles!r}; check the source record")
    table = _atom_table(mol)
    if not np.array_equal(np.sort(table[:, 0]), np.arange(1, len(table) + 1)):
        raise TnqError(f"SMILES {smiles!r} is not atom-mapped 1..{len(table)}; every atom needs a unique map number")
    return mol, table


def _atom_table(mol: Chem.Mol) -> np.ndarray:
    """(N, 3) int64: map number, atomic number and radical electrons of each atom, in atom order."""
    atoms = (mol.GetAtomWithIdx(i) for i in range(mol.GetNumAtoms()))
    return np.array([(a.GetAtomMapNum(), a.GetAtomicNum(), a.GetNumRadicalElectrons()) for a in atoms],
                    dtype=np.int64).reshape(-1, 3)


def atomic_numbers(mol: Chem.Mol) -> np.ndarray:
    """Atomic numbers of `mol` in atom order, int64 (N,)."""
    return _atom_table(mol)[:, 1]


def formal_charge(mol: Chem.Mol) -> int:
    """Total charge in e: the sum of the atoms' formal charges."""
    return int(Chem.GetFormalCharge(mol))


def multiplicity_from_smiles(mol: Chem.Mol) -> int:
    """Spin multiplicity 2S+1 from the radical electrons written in the SMILES (1 for a closed shell).

    High spin is assumed: S = (number of radical electrons) / 2.
    """
    return int(_atom_table(mol)[:, 2].sum()) + 1


def electron_count(z: np.ndarray, total_charge: int) -> int:
    """Number of electrons of a molecule with atomic numbers `z` (N,) and total charge `total_charge` (e)."""
    return int(np.sum(z, dtype=np.int64)) - int(total_charge)


def multiplicity_consistent(z_or_n_electrons: np.ndarray | int, total_charge: int, multiplicity: int) -> bool:
    """Whether `multiplicity` (2S+1) is possible for the electrons of a molecule.

    `z_or_n_electrons` is either the atomic numbers (N,), from which the electron count is computed with
    `total_charge` (e), or a scalar electron count (as from `electron_count`, charge already applied).
    An odd electron count needs an even multiplicity and vice versa, and 1 <= multiplicity <= n_electrons + 1.
    """
    if np.ndim(z_or_n_electrons) == 0:
        n_electrons = int(z_or_n_electrons)
    else:
        n_electrons = electron_count(np.asarray(z_or_n_electrons), total_charge)
    return bool(_consistent(np.int64(n_electrons), np.int64(multiplicity)))


def inconsistent_spin(z: np.ndarray, atom_offset: np.ndarray, total_charge: np.ndarray,
                      multiplicity: np.ndarray) -> np.ndarray:
    """Per conformer, whether its multiplicity is impossible for its electron count.

    `z` (A,) atomic numbers, `atom_offset` (C+1,) start of each conformer's atoms, `total_charge` (C,) in e,
    `multiplicity` (C,) 2S+1. Returns bool (C,), True where inconsistent.
    """
    offsets = np.asarray(atom_offset, dtype=np.int64)
    cumulative = np.concatenate(([0], np.cumsum(np.asarray(z, dtype=np.int64))))
    n_electrons = cumulative[offsets[1:]] - cumulative[offsets[:-1]] - np.asarray(total_charge, dtype=np.int64)
    return ~_consistent(n_electrons, np.asarray(multiplicity, dtype=np.int64))


def _consistent(n_electrons: np.ndarray, multiplicity: np.ndarray) -> np.ndarray:
    """Elementwise parity and range check of multiplicities against electron counts."""
    parity_ok = (n_electrons % 2) != (multiplicity % 2)
    return parity_ok & (multiplicity >= 1) & (multiplicity <= n_electrons + 1) & (n_electrons >= 0)
