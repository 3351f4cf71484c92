"""Checks the D4 physics term (tnq_model/nn/d4.py) in its side environment and prints its figures.

tad-dftd4 needs numpy<2, which tnq's core environment cannot take, so the term's dependency is the optional
extra `d4` and the term is checked in a side environment. This script makes it when it is missing:

    python -m venv /work/venvs/d4
    /work/venvs/d4/bin/pip install torch==2.13.0       # the CPU build, first
    /work/venvs/d4/bin/pip install 'numpy<2' 'tad-dftd4>=0.8,<0.9' dftd4==4.3.1 pytest rdkit ase pydantic typer rich pyyaml
    /work/venvs/d4/bin/pip install -e . --no-deps      # tnq itself, from the repository root

(`dftd4` is the reference library, a compiled wheel; the others are what tnq_model and the tests import.)
Then, with any interpreter, from the repository root:

    python bench/check_d4.py [--venv /work/venvs/d4] [--batch 16] [--steps 5]

runs tests/model/test_d4.py there and prints, from the side environment, the largest |dE| in hartree of the
term against dftd4 (molecules with total charges -1, 0, +1; three functionals; D4's own EEQ charges and
dftd4's charges fed in) and the term's cost per training step (energy, forces with create_graph and the
backward pass) of a float32 TensorNet on a small batch, with and without "d4".
"""

import argparse
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VENV = Path("/work/venvs/d4")
PACKAGES = ["numpy<2", "tad-dftd4>=0.8,<0.9", "dftd4==4.3.1", "pytest", "rdkit", "ase", "pydantic", "typer", "rich",
            "pyyaml"]
#: (SMILES, total charge): neutral molecules, an anion and two cations, 9 to 24 atoms.
MOLECULES = [("CCO", 0), ("c1ccccc1C(=O)[O-]", -1), ("CC(C)N", 0), ("C[NH3+]", 1), ("CC(=O)NC(C)C(=O)NC", 0),
             ("Cn1cnc2c1c(=O)n(C)c(=O)n2C", 0), ("ClCC(=O)[O-]", -1), ("c1ccc[nH+]c1", 1), ("CSCCO", 0)]
FUNCTIONALS = ("wb97m", "pbe0", "b3lyp")


def make_venv(venv: Path) -> None:
    """Create the side environment (the commands of the module docstring)."""
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([*pip, "torch==2.13.0"], check=True)
    subprocess.run([*pip, *PACKAGES], check=True)
    subprocess.run([*pip, "-e", str(REPO), "--no-deps"], check=True)


def embedded(smiles: str, seed: int):
    """z (N,) and float64 positions (N, 3) in Å of an RDKit conformer with hydrogens."""
    import torch
    from rdkit import Chem
    from rdkit.Chem import AllChem

    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    AllChem.EmbedMolecule(mol, randomSeed=seed)
    z = torch.tensor([atom.GetAtomicNum() for atom in mol.GetAtoms()])
    return z, torch.tensor(mol.GetConformer().GetPositions(), dtype=torch.float64)


def flat_batch(systems):
    """z, pos, batch and total charges of [(z, pos, charge), ...]."""
    import torch

    z = torch.cat([s[0] for s in systems])
    pos = torch.cat([s[1] for s in systems])
    batch = torch.cat([torch.full((len(s[0]),), b) for b, s in enumerate(systems)])
    return z, pos, batch, torch.tensor([s[2] for s in systems])


def largest_difference() -> float:
    """max |E_tnq - E_dftd4| in hartree over MOLECULES and FUNCTIONALS, with both sources of EEQ charges."""
    import numpy as np
    import torch
    from ase.units import Bohr, Hartree
    from dftd4.interface import DampingParam, DispersionModel

    from tnq_model.nn.d4 import D4Dispersion

    systems = [(*embedded(smiles, 7), charge) for smiles, charge in MOLECULES]
    z, pos, batch, total = flat_batch(systems)
    worst = 0.0
    for functional in FUNCTIONALS:
        expected, charges = [], []
        for sz, spos, charge in systems:
            model = DispersionModel(sz.numpy(), spos.numpy() / Bohr, charge=float(charge))
            expected.append(model.get_dispersion(DampingParam(method=functional, atm=True), grad=False)["energy"])
            charges.append(model.get_properties()["partial charges"])
        term = D4Dispersion(functional)
        with torch.no_grad():
            for fed in (None, torch.from_numpy(np.concatenate(charges))):
                got = (term(z, pos, batch, total, fed) / Hartree).numpy()
                worst = max(worst, float(np.abs(got - np.array(expected)).max()))
    return worst


def step_seconds(physics, systems, steps: int) -> float:
    """Seconds per training step of a float32 TensorNet: energies, forces (create_graph), loss, backward."""
    import torch

    from tnq_model.nn import TensorNet

    torch.manual_seed(0)
    model = TensorNet(hidden_channels=128, num_layers=2, cutoff=5.0, physics=physics)
    z, pos, batch, total = flat_batch(systems)
    pos = pos.float()

    def step() -> None:
        moving = pos.clone().requires_grad_()
        energy = model(z, moving, batch, total)
        (forces,) = torch.autograd.grad(-energy.sum(), moving, create_graph=True)
        (energy.square().mean() + forces.square().mean()).backward()

    step()  # warm-up
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - start) / steps


def figures(batch_size: int, steps: int) -> None:
    """Print the figures (in the side environment)."""
    import torch

    torch.set_num_threads(1)
    print(f"max |E(tnq d4) - E(dftd4)| = {largest_difference():.2e} hartree "
          f"({len(MOLECULES)} molecules, charges -1/0/+1, functionals {', '.join(FUNCTIONALS)})")
    systems = [(*embedded(smiles, seed), charge) for seed in range(batch_size)
               for smiles, charge in MOLECULES][:batch_size]
    atoms = sum(len(s[0]) for s in systems)
    without = step_seconds(["charges"], systems, steps)
    with_d4 = step_seconds(["charges", "d4"], systems, steps)
    print(f"training step, {batch_size} molecules ({atoms} atoms), float32, 1 thread: "
          f"{1e3 * without:.1f} ms without d4, {1e3 * with_d4:.1f} ms with d4 "
          f"(+{1e3 * (with_d4 - without):.1f} ms, x{with_d4 / without:.2f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--venv", type=Path, default=VENV, help="the side environment (made when missing)")
    parser.add_argument("--batch", type=int, default=16, help="molecules in the timed batch")
    parser.add_argument("--steps", type=int, default=5, help="timed training steps")
    parser.add_argument("--figures", action="store_true", help="only print the figures (run inside the side environment)")
    args = parser.parse_args()
    if args.figures:
        figures(args.batch, args.steps)
        return
    python = args.venv / "bin" / "python"
    if not python.exists():
        make_venv(args.venv)
    options = dict(cwd=REPO, check=True)
    subprocess.run([str(python), "-m", "pytest", "-q", "tests/model/test_d4.py"], **options)
    subprocess.run([str(python), str(Path(__file__).resolve()), "--figures", "--batch", str(args.batch),
                    "--steps", str(args.steps)], **options)


if __name__ == "__main__":
    main()
