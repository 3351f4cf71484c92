"""Benchmark: TensorNet energy+forces and training steps on SPICE-sized molecules, vs torchmd-net 3.1.

Prints, from one run, the median time per step of tnq's TensorNet, of torchmd-net's TensorNet when it is
importable (it is not a dependency; run this script with an interpreter that has it), their ratio, and the
overhead of the charge+spin state over plain TensorNet (and of physical terms with --physics). Same hyperparameters for both: 128 channels,
2 layers, 32 radial functions, 5 Å cutoff.

    python bench/bench_model.py --threads 1
    python bench/bench_model.py --device cuda        # on a GPU machine
    python bench/bench_model.py --physics charges,coulomb,zbl,nonlocal   # the physical terms' overhead
    python bench/bench_model.py --sweep      # every size against torchmd-net, with memory (bench/model_sweep.py)
"""

import argparse
import statistics
import time
from typing import Callable, Optional

import torch
from rdkit import Chem
from rdkit.Chem import AllChem
from torch import nn

from tnq_model import TensorNet

# Drug-like molecules of 20-40 atoms with hydrogens, like SPICE's PubChem and DES subsets.
SMILES = (
    "CC(C)Cc1ccc(cc1)C(C)C(=O)O",
    "CN1C=NC2=C1C(=O)N(C(=O)N2C)C",
    "CC(=O)Nc1ccc(O)cc1",
    "CCN(CC)CC(=O)Nc1c(C)cccc1C",
    "OC(=O)c1ccccc1OC(C)=O",
    "C[NH+]1CCC(CC1)c1ccccc1",
    "CC(=O)[O-].CCCCCCCC",
    "COc1ccc2[nH]cc(CCN)c2c1",
)
HIDDEN, LAYERS, RBF, CUTOFF = 128, 2, 32, 5.0


def molecule_batch(size: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """z, pos (Å) and batch of ``size`` RDKit conformers, cycling through SMILES with new seeds."""
    zs, positions = [], []
    for index in range(size):
        mol = Chem.AddHs(Chem.MolFromSmiles(SMILES[index % len(SMILES)]))
        AllChem.EmbedMolecule(mol, randomSeed=index)
        zs.append(torch.tensor([atom.GetAtomicNum() for atom in mol.GetAtoms()]))
        positions.append(torch.tensor(mol.GetConformer().GetPositions(), dtype=dtype))
    batch = torch.cat([torch.full((len(z),), b) for b, z in enumerate(zs)])
    return torch.cat(zs), torch.cat(positions), batch


def cluster_batch(size: int, atoms: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """z, pos (Å) and batch of ``size`` compact random clusters of ``atoms`` H..O atoms, 0.11 atoms/Å^3.

    Stands in for large molecules (a protein fragment has about that atom density); only the timing
    of such inputs is meaningful, not their chemistry.
    """
    generator = torch.Generator().manual_seed(0)
    side = (atoms / 0.11) ** (1.0 / 3.0)
    pos = side * torch.rand(size * atoms, 3, generator=generator, dtype=dtype)
    z = torch.randint(1, 9, (size * atoms,), generator=generator)
    return z, pos, torch.arange(size).repeat_interleave(atoms)


def median_seconds(
    steps: dict[str, Callable[[], None]], warmup: int, repeats: int, device: torch.device
) -> dict[str, float]:
    """Median seconds per step of each candidate; candidates alternate so that load changes hit all alike."""

    def synchronize() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for step in steps.values():
        for _ in range(warmup):
            step()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            synchronize()
            start = time.perf_counter()
            step()
            synchronize()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def make_steps(energy_fn: Callable[[torch.Tensor], torch.Tensor], pos: torch.Tensor, params: list):
    """(inference, training) steps: energy + forces; and energy + forces (create_graph) + backward."""

    def inference() -> None:
        p = pos.detach().requires_grad_(True)
        torch.autograd.grad(energy_fn(p).sum(), p)

    def training() -> None:
        p = pos.detach().requires_grad_(True)
        energy = energy_fn(p)
        (forces,) = torch.autograd.grad(energy.sum(), p, create_graph=True)
        (energy.pow(2).mean() + forces.pow(2).mean()).backward()
        for parameter in params:
            parameter.grad = None

    return inference, training


def torchmdnet_energy(dtype: torch.dtype, device: torch.device) -> Optional[Callable]:
    """torchmd-net 3.1 TensorNet + the same scalar head, or None when torchmd-net is not importable."""
    try:
        from torchmdnet.models.tensornet import TensorNet as Reference
    except ImportError:
        return None
    model = Reference(
        hidden_channels=HIDDEN, num_layers=LAYERS, num_rbf=RBF, cutoff_upper=CUTOFF, static_shapes=False, dtype=dtype
    ).to(device, dtype)
    head = nn.Sequential(nn.Linear(HIDDEN, HIDDEN // 2), nn.SiLU(), nn.Linear(HIDDEN // 2, 1)).to(device, dtype)

    def energy(z, pos, batch, num_molecules):
        x = model(z, pos, batch)[0]
        return torch.zeros(num_molecules, dtype=dtype, device=device).index_add(0, batch, head(x).squeeze(-1).to(dtype))

    energy.parameters = list(model.parameters()) + list(head.parameters())
    return energy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    parser.add_argument("--molecules", type=int, default=32, help="molecules per batch")
    parser.add_argument("--repeats", type=int, default=10, help="timed steps (median reported)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--physics", default="",
                        help="also time the charge+spin model with these physical terms (e.g. charges,coulomb,zbl,"
                             "d4,nonlocal; d4 needs the d4 extra, bench/check_d4.py) and print their overhead")
    parser.add_argument("--cluster-atoms", type=int, default=0,
                        help="time compact random clusters of this many atoms instead of drug-like molecules")
    parser.add_argument("--sweep", action="store_true",
                        help="every size of bench/model_sweep.py instead (times and memory against torchmd-net)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.sweep:
        import model_sweep  # bench/ is on sys.path when this runs as a script
        model_sweep.sweep(args.threads, args.repeats, args.warmup, args.dtype)
        return
    dtype, device = getattr(torch, args.dtype), torch.device(args.device)
    if args.cluster_atoms:
        inputs = cluster_batch(args.molecules, args.cluster_atoms, dtype)
    else:
        inputs = molecule_batch(args.molecules, dtype)
    z, pos, batch = (tensor.to(device) for tensor in inputs)
    num_molecules = args.molecules
    charge = (torch.arange(num_molecules) % 3 - 1).to(device)
    spin = (torch.arange(num_molecules) % 2).to(device)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {args.threads} thread(s)"
    print(f"{num_molecules} molecules, {len(z)} atoms ({len(z) / num_molecules:.1f}/molecule), {args.dtype}, "
          f"{where}, C={HIDDEN}, {LAYERS} layers, {RBF} rbf, cutoff {CUTOFF} Å")

    torch.manual_seed(0)
    plain = TensorNet(HIDDEN, LAYERS, RBF, CUTOFF, dtype=dtype).to(device)
    stateful = TensorNet(HIDDEN, LAYERS, RBF, CUTOFF, state=("charge", "spin"), dtype=dtype).to(device)
    candidates = {
        "tnq": (lambda p: plain(z, p, batch), list(plain.parameters())),
        "tnq charge+spin": (lambda p: stateful(z, p, batch, charge, spin), list(stateful.parameters())),
    }
    terms = [name for name in args.physics.split(",") if name]
    if terms:
        physical = TensorNet(HIDDEN, LAYERS, RBF, CUTOFF, state=("charge", "spin"), physics=terms, dtype=dtype).to(device)
        candidates["tnq +physics"] = (lambda p: physical(z, p, batch, charge, spin), list(physical.parameters()))
        print(f"tnq +physics: charge+spin with physics {physical.physics}")
    reference = torchmdnet_energy(dtype, device)
    if reference is None:
        print("torchmd-net: unavailable (not importable in this interpreter)")
    else:
        candidates["torchmd-net 3.1"] = (lambda p: reference(z, p, batch, num_molecules), reference.parameters)

    steps = {name: make_steps(energy_fn, pos, params) for name, (energy_fn, params) in candidates.items()}
    for index, kind in enumerate(("energy+forces", "training step")):
        times = median_seconds({name: pair[index] for name, pair in steps.items()}, args.warmup, args.repeats, device)
        print(f"\n{kind} (median of {args.repeats}, ms)")
        for name, seconds in times.items():
            print(f"  {name:18s} {1000 * seconds:9.1f}")
        print(f"  state overhead (charge+spin / plain): {times['tnq charge+spin'] / times['tnq']:.3f}")
        if "tnq +physics" in times:
            print(f"  physics overhead (+physics / charge+spin): {times['tnq +physics'] / times['tnq charge+spin']:.3f}")
        if "torchmd-net 3.1" in times:
            print(f"  ratio tnq / torchmd-net: {times['tnq'] / times['torchmd-net 3.1']:.3f}")


if __name__ == "__main__":
    main()
