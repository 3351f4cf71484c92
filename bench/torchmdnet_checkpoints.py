"""Writes tests/model/data/torchmdnet_checkpoints/: small real torchmd-net 3.1 TensorNet checkpoints and
torchmd-net's own energies and forces for them.

tests/model/test_from_torchmdnet.py loads these files with ``tnq_model.from_torchmdnet`` in CI (where
torchmd-net is not installed) and compares tnq's energies and forces with the ones stored here.

Each checkpoint is written the way ``torchmd-train`` writes one: the hyperparameters are torchmd-net's own
argparse defaults (``torchmdnet.scripts.train.get_argparse``) with the options of the case, the priors come
from ``create_prior_models`` and their init args are stored as ``prior_args``, the model is torchmd-net's
Lightning module ``LNNP`` and a Lightning ``Trainer`` takes one optimiser step on three molecules and saves
the file. The references are then computed from the saved file by torchmd-net's ``load_model`` (its
reading of the checkpoint, not the weights in memory), with its pure-PyTorch TensorNet operations
(``energy``, ``forces``; float64 throughout) and with its default warp kernels (``energy_warp``,
``forces_warp``; within about 1e-8 relative, see bench/torchmdnet_reference.py). Tensors that torchmd-net
initialises to a constant (LayerNorms, head biases) get seeded noise first so every weight matters. The
total charge is passed as float64, as tnq computes it: torchmd-net given integer charges forms 0.1 q in
float32, about 1e-9 off.

Cases (8 channels, 2 layers, 8 radial functions, max_z 10, cutoff 4.5 Å, float64):
``plain`` (a full checkpoint with optimiser state, as torchmd-train's ModelCheckpoint saves it), ``charge``
(total-charge input), ``atomref`` (an Atomref prior with per-element energies, and the charge input),
``std`` (standardize: std 2.5, mean 0), ``old_layout`` (``plain`` rewritten in the tensor layout of
checkpoints before torchmd-net dropped ``check_errors``, which ``load_model`` detects and remixes), and for
the refusals ``so3`` (SO(3) TensorNet), ``dipole`` (DipoleMoment output model) and ``mean`` (standardize
with a non-zero mean), with one layer. All but ``plain`` are saved without optimiser state (``weights_only``) to stay small.

Run with an interpreter that has torchmd-net 3.1 and Lightning (neither is a tnq dependency):

    python -m venv --system-site-packages /work/venvs/tmdnet
    /work/venvs/tmdnet/bin/pip install --no-deps 'torchmd-net==3.1.*' warp-lang lightning-utilities lightning torchmetrics
    PYTHONPATH=. /work/venvs/tmdnet/bin/python bench/torchmdnet_checkpoints.py
"""

import argparse
import tempfile
from argparse import Namespace
from importlib.metadata import version
from pathlib import Path

import torch

OUTPUT = Path("tests/model/data/torchmdnet_checkpoints")
HPARAMS = dict(model="tensornet", embedding_dimension=8, num_layers=2, num_rbf=8, max_z=10, cutoff_upper=4.5,
               precision=64, derivative=True, num_workers=0, batch_size=3, inference_batch_size=3, seed=1,
               lr_metric="train")
#: Per-element reference energies of the Atomref case (eV), for H, C, N, O; zero elsewhere.
ATOMREF = {1: -13.6, 6: -1029.8, 7: -1485.3, 8: -2042.6}
CASES = {
    "plain": dict(options={}, full=True),
    "charge": dict(options=dict(charge=True)),
    "atomref": dict(options=dict(charge=True, prior_model=[{"Atomref": {"max_z": 10}}]), atomref=ATOMREF),
    "std": dict(options=dict(standardize=True), mean=0.0, std=2.5),
    "so3": dict(options=dict(equivariance_invariance_group="SO(3)", num_layers=1)),
    "dipole": dict(options=dict(output_model="DipoleMoment", num_layers=1)),
    "mean": dict(options=dict(standardize=True, num_layers=1), mean=-3.0, std=1.5),
}
#: The linears whose output rows old checkpoints ordered channel-major ([N, F, 3, 3] tensors).
REMIXED = ["representation_model.tensor_embedding.linears_scalar.1"] + [
    f"representation_model.layers.{k}.linears_scalar.2" for k in range(HPARAMS["num_layers"])]
WEIGHT_SEED = 1234
NOISE = 0.1


def hyperparameters(options: dict) -> Namespace:
    """torchmd-train's arguments: its argparse defaults, HPARAMS and the case's options."""
    from torchmdnet.scripts.train import get_argparse

    args = get_argparse().parse_args([])
    vars(args).update(HPARAMS, **options)
    return args


def lightning_module(case: dict):
    """torchmd-net's LNNP for `case`, as torchmd-train builds it, with seeded noise on constant tensors."""
    from torchmdnet.models.model import create_prior_models
    from torchmdnet.module import LNNP

    args = hyperparameters(case["options"])
    torch.manual_seed(WEIGHT_SEED)
    priors = create_prior_models(vars(args))
    args.prior_args = [prior.get_init_args() for prior in priors]
    mean = None if "mean" not in case else torch.tensor(case["mean"])
    std = None if "std" not in case else torch.tensor(case["std"])
    module = LNNP(args, prior_model=priors or None, mean=mean, std=std)
    noise = torch.Generator().manual_seed(WEIGHT_SEED)
    with torch.no_grad():
        for prior in priors:  # in the model's float64, as a dataset's atomref would be
            table = torch.zeros_like(prior.initial_atomref)
            for z, energy in case.get("atomref", {}).items():
                table[z] = energy
            prior.initial_atomref.copy_(table)
            prior.atomref.weight.copy_(table)
        for name, parameter in module.model.named_parameters():
            if not name.startswith("prior_model") and torch.all(parameter == parameter.flatten()[0]):
                parameter.add_(NOISE * torch.randn(parameter.shape, generator=noise, dtype=parameter.dtype))
    return module


def training_batches(z, pos, batch, charge):
    """A torch_geometric loader of the molecules with made-up energies and forces (one optimiser step)."""
    from torch_geometric.data import Data
    from torch_geometric.loader import DataLoader

    data = [Data(z=z[batch == b], pos=pos[batch == b], q=charge[b:b + 1].long(), y=torch.tensor([[-1.0 * b]]),
                 neg_dy=torch.zeros(int((batch == b).sum()), 3, dtype=pos.dtype)) for b in range(int(batch.max()) + 1)]
    return DataLoader(data, batch_size=len(data))


def write_checkpoint(case: dict, path: Path, loader) -> None:
    """One Lightning optimiser step on `loader`, then the checkpoint as torchmd-train's Trainer saves it."""
    import lightning.pytorch as pl

    module = lightning_module(case)
    with tempfile.TemporaryDirectory() as root:
        trainer = pl.Trainer(max_steps=1, accelerator="cpu", devices=1, precision=64, logger=False,
                             enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                             limit_val_batches=0, default_root_dir=root, inference_mode=False)
        trainer.fit(module, train_dataloaders=loader)
        trainer.save_checkpoint(path, weights_only=not case.get("full", False))


def old_layout(source: Path, path: Path) -> None:
    """`source` as a checkpoint of the old tensor layout: `check_errors` in its hyperparameters and the
    REMIXED output rows in channel-major order (torchmd-net's `load_model` detects and undoes both)."""
    checkpoint = torch.load(source, map_location="cpu", weights_only=False)
    checkpoint.pop("optimizer_states", None)
    checkpoint["hyper_parameters"]["check_errors"] = True
    weights = checkpoint["state_dict"]
    for name in REMIXED:
        for kind in ("weight", "bias"):
            key = f"model.{name}.{kind}"
            value = weights[key]
            rows = value.shape[0]
            weights[key] = value.reshape(3, rows // 3, *value.shape[1:]).transpose(0, 1).reshape(value.shape).clone()
    torch.save(checkpoint, path)


def evaluate(path: Path, z, pos, batch, charge, pure: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Energies (B,) and forces (N, 3) of torchmd-net's `load_model(path)`: warp kernels or pure PyTorch."""
    from torchmdnet.models import tensornet as tensornet_module
    from torchmdnet.models.model import load_model

    names = ("compose_tensor", "decompose_tensor", "tensor_matmul_o3", "tensor_matmul_so3")
    saved = {name: getattr(tensornet_module, name) for name in names}
    try:
        model = load_model(str(path), derivative=True).eval()
        if pure:
            for name in names:
                setattr(tensornet_module, name, getattr(tensornet_module, "_" + name))
            for module in model.modules():
                if hasattr(module, "opt"):
                    module.opt = False
        use_charge = model_hparams(path).get("charge", False)
        energy, forces = model(z, pos.clone(), batch, q=charge if use_charge else None)
    finally:
        for name, function in saved.items():
            setattr(tensornet_module, name, function)
    return energy.detach().squeeze(-1), forces.detach()


def model_hparams(path: Path) -> dict:
    """The hyper_parameters of the checkpoint at `path`."""
    return torch.load(path, map_location="cpu", weights_only=False)["hyper_parameters"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args()
    torch.set_num_threads(1)
    from torchmdnet_reference import TOTAL_CHARGE, molecules

    z, pos, batch = molecules()
    charge = torch.tensor(TOTAL_CHARGE, dtype=torch.float64)
    args.output.mkdir(parents=True, exist_ok=True)
    loader = training_batches(z, pos, batch, charge)
    references = {}
    for name, case in CASES.items():
        path = args.output / f"{name}.ckpt"
        write_checkpoint(case, path, loader)
        if name == "plain":
            old_layout(path, args.output / "old_layout.ckpt")
    for path in sorted(args.output.glob("*.ckpt")):
        if path.stem in ("so3", "dipole", "mean"):
            continue  # refused by tnq; no reference needed
        energy, forces = evaluate(path, z, pos, batch, charge, pure=True)
        energy_warp, forces_warp = evaluate(path, z, pos, batch, charge, pure=False)
        references[path.stem] = dict(energy=energy, forces=forces, energy_warp=energy_warp, forces_warp=forces_warp)
    payload = dict(torchmdnet_version=version("torchmd-net"), lightning_version=version("lightning"),
                   torch_version=str(torch.__version__), z=z, pos=pos, batch=batch, total_charge=charge,
                   atomref=dict(ATOMREF), references=references)
    torch.save(payload, args.output / "references.pt")
    sizes = {path.name: round(path.stat().st_size / 1024) for path in sorted(args.output.iterdir())}
    gap = max(float((ref["energy_warp"] - ref["energy"]).abs().max()) for ref in references.values())
    print(f"{args.output}: torchmd-net {payload['torchmdnet_version']}, files (kB) {sizes}, "
          f"total {sum(sizes.values())} kB; warp vs PyTorch ops max energy gap {gap:.1e} eV")


if __name__ == "__main__":
    main()
