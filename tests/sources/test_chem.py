"""RDKit helpers against molecules whose charge, spin and electron count are known by hand."""

import numpy as np
import pytest

from tnq_data.chem import (atomic_numbers, electron_count, formal_charge, inconsistent_spin, mapped_smiles_summary,
                           mol_from_mapped_smiles,
                           multiplicity_consistent, multiplicity_from_smiles)
from tnq_core.errors import TnqError


def test_atoms_follow_the_map_order():
    mol = mol_from_mapped_smiles("[H:3][C:1]#[C:2][H:4].[Na+:5]")
    assert atomic_numbers(mol).tolist() == [6, 6, 1, 1, 11]
    assert [a.GetAtomMapNum() for a in mol.GetAtoms()] == [1, 2, 3, 4, 5]
    assert formal_charge(mol) == 1
    assert multiplicity_from_smiles(mol) == 1


def test_explicit_hydrogens_are_kept_and_charges_summed():
    mol = mol_from_mapped_smiles("[O-:1][C:2](=[O:3])[C:4]([H:5])([H:6])[N+:7]([H:8])([H:9])[H:10]")
    assert mol.GetNumAtoms() == 10
    assert formal_charge(mol) == 0
    assert atomic_numbers(mol).tolist() == [8, 6, 8, 6, 1, 1, 7, 1, 1, 1]


@pytest.mark.parametrize("smiles, multiplicity", [("[C:1]([H:2])([H:3])[H:4]", 2),   # methyl radical
                                                  ("[C:1]([H:2])[H:3]", 3),            # triplet methylene
                                                  ("[O:1]([H:2])[H:3]", 1)])
def test_multiplicity_from_radicals(smiles, multiplicity):
    assert multiplicity_from_smiles(mol_from_mapped_smiles(smiles)) == multiplicity


@pytest.mark.parametrize("smiles", ["C1CC(", "[C:1][C:1]", "CCO"])
def test_bad_or_unmapped_smiles_raise(smiles):
    with pytest.raises(TnqError, match="SMILES"):
        mol_from_mapped_smiles(smiles)


def test_electron_count_and_parity():
    water = np.array([8, 1, 1])
    assert electron_count(water, 0) == 10
    assert electron_count(water, 1) == 9
    assert multiplicity_consistent(water, 0, 1)
    assert multiplicity_consistent(water, 0, 3)
    assert not multiplicity_consistent(water, 0, 2)
    assert multiplicity_consistent(water, 1, 2)          # H2O+ doublet
    assert not multiplicity_consistent(water, 1, 1)
    assert multiplicity_consistent(10, 0, 1)             # a scalar is the electron count itself
    assert not multiplicity_consistent(9, 0, 1)
    assert not multiplicity_consistent(np.array([1]), 0, 0)      # multiplicity must be >= 1
    assert not multiplicity_consistent(np.array([1, 1]), 0, 5)   # 2 electrons: at most a triplet
    assert multiplicity_consistent(np.array([1]), 1, 1)          # H+: no electron, a (trivial) singlet
    assert not multiplicity_consistent(np.array([1]), 2, 1)      # a negative electron count fits nothing


def test_inconsistent_spin_matches_the_scalar_check():
    rng = np.random.default_rng(0)
    n_atoms = rng.integers(1, 6, size=200)
    z = rng.integers(1, 10, size=n_atoms.sum())
    offset = np.concatenate([[0], np.cumsum(n_atoms)])
    charge = rng.integers(-1, 2, size=200)
    mult = rng.integers(0, 5, size=200)
    expected = [not multiplicity_consistent(z[offset[i]:offset[i + 1]], charge[i], mult[i]) for i in range(200)]
    assert inconsistent_spin(z, offset, charge, mult).tolist() == expected
    assert 20 < sum(expected) < 180


@pytest.mark.parametrize("smiles", ["[H:3][C:1]#[C:2][H:4].[Na+:5]", "[O-:3][C:1]([H:4])([H:5])[C:2]([H:6])([H:7])[H:8]",
                                    "[C:2]([H:1])([H:3])[H:4]"])
def test_summary_equals_the_mol_helpers(smiles):
    mol = mol_from_mapped_smiles(smiles)
    z, charge, multiplicity = mapped_smiles_summary(smiles)
    assert z.tolist() == atomic_numbers(mol).tolist()
    assert (charge, multiplicity) == (formal_charge(mol), multiplicity_from_smiles(mol))
