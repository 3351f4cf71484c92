"""Writes tests/model/data/torchmdnet_reference.pt: torchmd-net 3.1 TensorNet energies and forces.

tests/model/test_torchmdnet_reference.py loads this file in CI (where torchmd-net is not installed),
maps the stored torchmd-net weights onto tnq's TensorNet and checks that tnq gives the same energies,
forces and radial basis at every cutoff, with and without the total charge input.

The references are small float64 models (16 channels, 2 layers, 8 radial functions, max_z 20),
torchmd-net's TensorNet with its Scalar output head, summed per molecule (TorchMD_Net, mean 0, std 1),
forces -dE/dpos by its own autograd. Each case is evaluated twice: with torchmd-net's pure-PyTorch
TensorNet operations (its ``_compose_tensor``, ``_decompose_tensor``, ``_tensor_matmul_o3/so3`` and
non-``opt`` branches), which are float64 throughout and are what tnq matches to float64 precision, and
with the warp kernels it uses by default (``energy_warp``, ``forces_warp``): torchmd-net 3.1's
``tensor_norm3`` kernel takes 1/3 as a float32 constant even in float64, so that path is only within
about 1e-8 of the exact result. Weights are torchmd-net's own seeded initialisation; the tensors it
initialises to a constant (LayerNorm weights and biases, output-head biases) get seeded noise on top so
that every weight is exercised. One seed gives the same weights at every cutoff, so the file stores
them once; the radial basis (which depends on the cutoff) is stored per case.

Run with an interpreter that has torchmd-net 3.1 (it is not a tnq dependency):

    python -m venv /tmp/tmdnet --system-site-packages
    /tmp/tmdnet/bin/pip install --no-deps 'torchmd-net==3.1.*' warp-lang lightning-utilities
    PYTHONPATH=. /tmp/tmdnet/bin/python bench/torchmdnet_reference.py
"""

import argparse
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path

import torch
from rdkit import Chem
from rdkit.Chem import AllChem
from torchmdnet.models import tensornet as tensornet_module
from torchmdnet.models.model import TorchMD_Net
from torchmdnet.models.output_modules import Scalar
from torchmdnet.models.tensornet import TensorNet

OUTPUT = Path("tests/model/data/torchmdnet_reference.pt")
# Ethanol (about 3.6 Å across), benzoate (about 6.6 Å) and isopropylamine (about 4.3 Å): the cutoffs
# below drop different pairs of each.
SMILES = ("CCO", "c1ccccc1C(=O)[O-]", "CC(C)N")
CONFORMER_SEED = 7
TOTAL_CHARGE = (1.0, -1.0, 2.0)
CUTOFFS = (3.0, 4.5, 5.0, 6.0)
HPARAMS = dict(hidden_channels=16, num_layers=2, num_rbf=8, max_z=20)
WEIGHT_SEED = 1234
NOISE = 0.1


def molecules() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """z (N,), float64 pos (N, 3) in Å and batch (N,) of the RDKit conformers of SMILES."""
    zs, positions, batch = [], [], []
    for index, smiles in enumerate(SMILES):
        mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
        if AllChem.EmbedMolecule(mol, randomSeed=CONFORMER_SEED) != 0:
            raise RuntimeError(f"RDKit could not embed {smiles}")
        zs.append(torch.tensor([atom.GetAtomicNum() for atom in mol.GetAtoms()]))
        positions.append(torch.tensor(mol.GetConformer().GetPositions(), dtype=torch.float64))
        batch.append(torch.full((mol.GetNumAtoms(),), index))
    return torch.cat(zs), torch.cat(positions), torch.cat(batch)


def reference_model(cutoff: float) -> TorchMD_Net:
    """torchmd-net 3.1 TensorNet + Scalar head in float64, seeded weights, derivative (forces) on."""
    torch.manual_seed(WEIGHT_SEED)
    dtype = torch.float64
    representation = TensorNet(
        num_layers=HPARAMS["num_layers"], hidden_channels=HPARAMS["hidden_channels"],
        num_rbf=HPARAMS["num_rbf"], max_z=HPARAMS["max_z"], cutoff_lower=0.0, cutoff_upper=cutoff,
        static_shapes=False, dtype=dtype,
    )
    head = Scalar(HPARAMS["hidden_channels"], dtype=dtype)
    model = TorchMD_Net(representation, head, derivative=True, dtype=dtype)
    noise = torch.Generator().manual_seed(WEIGHT_SEED)
    with torch.no_grad():
        for parameter in model.parameters():
            if torch.all(parameter == parameter.flatten()[0]):
                parameter.add_(NOISE * torch.randn(parameter.shape, generator=noise, dtype=dtype))
    return model.eval()


@contextmanager
def pytorch_ops(model: TorchMD_Net):
    """torchmd-net's TensorNet with its pure-PyTorch operations instead of the warp kernels."""
    names = ("compose_tensor", "decompose_tensor", "tensor_matmul_o3", "tensor_matmul_so3")
    saved = {name: getattr(tensornet_module, name) for name in names}
    modules = [module for module in model.modules() if hasattr(module, "opt")]
    try:
        for name in names:
            setattr(tensornet_module, name, getattr(tensornet_module, "_" + name))
        for module in modules:
            module.opt = False
        yield model
    finally:
        for name, function in saved.items():
            setattr(tensornet_module, name, function)
        for module in modules:
            module.opt = True


def evaluate(model: TorchMD_Net, z, pos, batch, charge) -> tuple[torch.Tensor, torch.Tensor]:
    """Energies (B,) and forces (N, 3) from the model."""
    energy, forces = model(z, pos.clone(), batch, q=charge)
    return energy.detach().squeeze(-1), forces.detach()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args()
    torch.set_num_threads(1)

    z, pos, batch = molecules()
    charge = torch.tensor(TOTAL_CHARGE, dtype=torch.float64)
    basis = ("representation_model.distance_expansion.means", "representation_model.distance_expansion.betas")
    shared: dict[str, torch.Tensor] = {}
    cases = []
    warp_gap = 0.0
    for cutoff in CUTOFFS:
        model = reference_model(cutoff)
        weights = {name: value.detach().clone() for name, value in model.state_dict().items()}
        means, betas = weights.pop(basis[0]), weights.pop(basis[1])
        if not shared:
            shared = weights
        elif weights.keys() != shared.keys() or any(not torch.equal(weights[k], shared[k]) for k in shared):
            raise RuntimeError("the seeded weights differ between cutoffs; they are stored once")
        for with_charge in (False, True):
            q = charge if with_charge else None
            energy_warp, forces_warp = evaluate(model, z, pos, batch, q)
            with pytorch_ops(model):
                energy, forces = evaluate(model, z, pos, batch, q)
            cases.append(dict(
                cutoff=cutoff, with_charge=with_charge, means=means, betas=betas, energy=energy, forces=forces,
                energy_warp=energy_warp, forces_warp=forces_warp,
            ))
            warp_gap = max(warp_gap, float(((energy_warp - energy) / energy.abs()).abs().max()))

    distances = torch.cdist(pos, pos)
    same = batch.unsqueeze(0) == batch.unsqueeze(1)
    pairs = {c: int(((distances < c) & same).sum() - z.shape[0]) // 2 for c in CUTOFFS}
    longest = max(float(distances[same].max()), 0.0)
    payload = dict(
        torchmdnet_version=version("torchmd-net"), torch_version=str(torch.__version__),
        hparams=dict(HPARAMS), smiles=list(SMILES),
        z=z, pos=pos, batch=batch, total_charge=charge, state_dict=shared, cases=cases,
    )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    torch.save(payload, args.output)
    print(
        f"{args.output}: torchmd-net {payload['torchmdnet_version']}, {len(cases)} cases, {z.shape[0]} atoms in "
        f"{len(SMILES)} molecules, pairs within cutoff {pairs} (longest {longest:.2f} Å), warp vs "
        f"PyTorch ops max relative energy gap {warp_gap:.1e}, {args.output.stat().st_size / 1024:.0f} kB"
    )


if __name__ == "__main__":
    main()
