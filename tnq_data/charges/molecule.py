"""Molecules in the store's atom order and their canonical identity (for the cache)."""

from functools import lru_cache

import numpy as np
from rdkit import Chem

from tnq_data import chem
from tnq_data.charges.base import ChargeFailure
from tnq_core.errors import TnqError


def store_mol(smiles: str, z: np.ndarray) -> Chem.Mol:
    """An RDKit molecule whose atom i is the stored atom i (a fresh copy the caller may modify).

    An atom-mapped SMILES is ordered by its maps; an unmapped one gets explicit hydrogens in RDKit order.
    Raises `ChargeFailure` when the SMILES cannot be parsed or its elements differ from `z` (N,).
    """
    mol = Chem.Mol(_parse(smiles))
    if not np.array_equal(chem.atomic_numbers(mol), np.asarray(z, dtype=np.int64)):
        raise ChargeFailure(f"the elements of SMILES {smiles!r} do not match the stored atomic numbers in order")
    return mol


@lru_cache(maxsize=4096)
def _parse(smiles: str) -> Chem.Mol:
    """The parsed molecule of `smiles`, shared; callers copy it."""
    mol = Chem.MolFromSmiles(smiles)
    if mol is None:
        raise ChargeFailure(f"RDKit cannot parse the SMILES {smiles!r}")
    if not any(atom.GetAtomMapNum() for atom in mol.GetAtoms()):
        return Chem.AddHs(mol)
    try:
        return chem.mol_from_mapped_smiles(smiles)
    except TnqError as err:
        raise ChargeFailure(str(err)) from err


def canonical_identity(mol: Chem.Mol) -> tuple[str, np.ndarray]:
    """Canonical isomeric SMILES of `mol` and its canonical rank per atom, int64 (N,).

    ``values_canonical[rank] = values_store`` puts per-atom values in an order that does not depend on how the
    molecule was written; ``values_store = values_canonical[rank]`` maps them back. Ties between symmetric
    atoms are broken deterministically.
    """
    plain = Chem.Mol(mol)
    for atom in plain.GetAtoms():
        atom.SetAtomMapNum(0)
    rank = np.array(Chem.CanonicalRankAtoms(plain, breakTies=True), dtype=np.int64)
    return Chem.MolToSmiles(plain, isomericSmiles=True, canonical=True), rank


def openff_molecule_errors() -> tuple[type[Exception], ...]:
    """The OpenFF toolkit errors that are about the molecule (cached as its failure), not about the set-up."""
    from openff.toolkit.utils import exceptions

    return (exceptions.ChargeCalculationError, exceptions.ConformerGenerationError,
            exceptions.RadicalsNotSupportedError, exceptions.UndefinedStereochemistryError,
            exceptions.InconsistentStereochemistryError, exceptions.InvalidConformerError)


def unit_mol(smiles: str, z: np.ndarray, total_charge: int) -> Chem.Mol:
    """`store_mol`, also requiring the SMILES' formal charges to add up to the stored `total_charge` (e)."""
    mol = store_mol(smiles, z)
    if chem.formal_charge(mol) != total_charge:
        raise ChargeFailure(f"the SMILES has formal charge {chem.formal_charge(mol)} e but the stored total "
                            f"charge is {total_charge} e")
    return mol
