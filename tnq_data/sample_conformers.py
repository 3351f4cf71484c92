"""RDKit structures of the sample molecules: mapped SMILES, charge/spin check, relaxed and displaced conformers."""

import numpy as np
from rdkit import Chem
from rdkit.Chem import AllChem

from tnq_core.errors import TnqError
from tnq_data.sample_molecules import SampleMolecule
from tnq_data.units import BOHR_TO_ANGSTROM
from tnq_data.xtb import gfn2_optimise

__all__ = ["check_spin_and_charge", "conformers_bohr", "mapped_molecule"]

#: Gaussian displacement (Å) of relaxed conformers: first half "hot", second half near-minimum.
_HOT_SIGMA, _COLD_SIGMA = 0.03, 0.01
#: L-BFGS steps of the GFN2-xTB relaxation of each force-field conformer (keeps it near its torsion well).
_RELAX_STEPS = 20


def mapped_molecule(smiles: str) -> tuple[Chem.Mol, str]:
    """RDKit molecule with explicit hydrogens and its SPICE-style mapped SMILES.

    Atom i of the molecule carries map number i+1 (heavy atoms first, then hydrogens), so array order
    equals map order.
    """
    mol = Chem.MolFromSmiles(smiles)
    if mol is None:
        raise TnqError(f"RDKit cannot parse the sample SMILES {smiles!r}; fix tnq_data/sample_molecules.py")
    mol = Chem.AddHs(mol)
    tagged = Chem.Mol(mol)
    for atom in tagged.GetAtoms():
        atom.SetAtomMapNum(atom.GetIdx() + 1)
    return mol, Chem.MolToSmiles(tagged, isomericSmiles=True)


def check_spin_and_charge(mol: Chem.Mol, charge: int, multiplicity: int, label: str) -> None:
    """Fail when the SMILES disagrees with the declared charge (e) or multiplicity (2S+1)."""
    formal = Chem.GetFormalCharge(mol)
    radicals = sum(atom.GetNumRadicalElectrons() for atom in mol.GetAtoms())
    if formal != charge or radicals + 1 != multiplicity:
        raise TnqError(f"sample molecule {label}: SMILES has charge {formal} and {radicals} radical electrons, "
                       f"declared charge {charge} and multiplicity {multiplicity}; fix tnq_data/sample_molecules.py")


def conformers_bohr(mol: Chem.Mol, spec: SampleMolecule, n_conformers: int, seed: int) -> np.ndarray:
    """`n_conformers` geometries (bohr): ETKDG, MMFF (UFF where MMFF lacks parameters), a short GFN2-xTB
    relaxation, then a Gaussian displacement (large for the first half, small for the rest)."""
    params = AllChem.ETKDGv3()
    params.randomSeed = seed
    params.numThreads = 1
    params.pruneRmsThresh = -1.0
    ids = list(AllChem.EmbedMultipleConfs(mol, numConfs=n_conformers, params=params))
    if len(ids) != n_conformers:
        raise TnqError(f"RDKit embedded {len(ids)} of {n_conformers} conformers of {spec.name}; "
                       "try another seed or a smaller n_conformers")
    if AllChem.MMFFHasAllMoleculeParams(mol):
        AllChem.MMFFOptimizeMoleculeConfs(mol, numThreads=1, maxIters=500)
    else:
        AllChem.UFFOptimizeMoleculeConfs(mol, numThreads=1, maxIters=500)
    numbers = np.array([atom.GetAtomicNum() for atom in mol.GetAtoms()])
    relaxed = np.stack([
        gfn2_optimise(numbers, mol.GetConformer(i).GetPositions() / BOHR_TO_ANGSTROM, spec.charge,
                      spec.multiplicity - 1, f"{spec.name} conformer {k}", max_steps=_RELAX_STEPS)[0]
        for k, i in enumerate(ids)
    ])
    rng = np.random.default_rng(seed)
    sigma = np.where(np.arange(n_conformers) < (n_conformers + 1) // 2, _HOT_SIGMA, _COLD_SIGMA)
    return relaxed + rng.normal(size=relaxed.shape) * sigma[:, None, None] / BOHR_TO_ANGSTROM
