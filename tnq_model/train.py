"""Training a Potential on a store: splits, references, the loop (AdamW, warm-up, plateau, EMA, early stopping),
checkpoints that resume exactly, and DDP (`torchrun --nproc-per-node N -m tnq_model.train --store ...`).

Only rank 0 writes to the run directory. Run directory: config.yaml, splits.npz, data.json, metrics.csv,
last.pt, best.pt, eval_test.json, learning_curves.png, parity.png.
"""

import csv
import json
import math
import os
import time
from dataclasses import dataclass
from importlib.metadata import version as package_version
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn import functional as F
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from tnq_data.errors import TnqError
from tnq_data.progress import progress_bar
from tnq_data.store import open_store
from tnq_data.store.reader import Store

from .checkpoint import load_potential, read_checkpoint, save_checkpoint
from .config import TrainConfig, write_config
from .data import Batch, StoreBatches, make_loader, to_device, usable_conformers
from .evaluate import error_report, predict, split_batches, write_report
from .nn.tensornet import TensorNet
from .plots import learning_curves, parity_plots
from .potential import Potential
from .references import fit_references, reference_energy
from .splits import conformer_mask, cover_elements, load_splits, molecule_elements, save_splits, split_molecules

#: Sums accumulated over a pass: conformers, force components, energy loss, force loss, |dE| (eV), |dF| (eV/Å).
_N_CONF, _N_COMP, _E_LOSS, _F_LOSS, _E_ABS, _F_ABS = range(6)


@dataclass
class Distributed:
    """This process's place among the training processes."""

    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def all_reduce(self, tensor: Tensor, op: dist.ReduceOp = dist.ReduceOp.SUM) -> Tensor:
        """`tensor` reduced over the processes (in place; unchanged when alone)."""
        if self.world_size > 1:
            dist.all_reduce(tensor, op)
        return tensor


def init_distributed(device: str) -> Distributed:
    """Join the process group that torchrun describes in the environment (gloo on CPU, nccl on CUDA)."""
    if device == "cuda" and not torch.cuda.is_available():
        raise TnqError("--device cuda but torch sees no CUDA device; use --device cpu or a CUDA build of torch")
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device == "cuda" else "gloo")
    rank = dist.get_rank() if world_size > 1 else 0
    return Distributed(rank, world_size, torch.device(f"cuda:{local_rank}" if device == "cuda" else "cpu"))


class ForceModel(nn.Module):
    """The Potential as one module for DDP: batch -> (energies (B,) eV, forces (N, 3) eV/Å or None)."""

    def __init__(self, potential: Potential, forces: bool) -> None:
        super().__init__()
        self.potential, self.forces = potential, forces

    def forward(self, batch: Batch) -> tuple[Tensor, Tensor | None]:
        args = (batch["z"], batch["pos"], batch["batch"], batch["total_charge"], batch["multiplicity"],
                batch.get("partial_charges"))
        if self.forces:
            return self.potential.energy_and_forces(*args, create_graph=self.training)
        with torch.set_grad_enabled(self.training):
            return self.potential(*args), None


def loss_sums(config: TrainConfig, batch: Batch, energy: Tensor, forces: Tensor | None) -> Tensor:
    """The six pass sums (see `_N_CONF`...) of one batch; energy errors are per atom (eV/atom)."""
    def penalty(error: Tensor) -> Tensor:
        if config.loss.kind == "huber":
            return F.huber_loss(error, torch.zeros_like(error), reduction="sum", delta=config.loss.huber_delta)
        return error.abs().sum() if config.loss.kind == "l1" else error.pow(2).sum()

    energy_error = (energy.double() - batch["energy"]) / batch["n_atoms"]
    zero = energy_error.new_zeros(())
    force_error = None if forces is None else (forces - batch["forces"]).double()
    return torch.stack([
        energy_error.new_tensor(float(len(energy_error))),
        zero if force_error is None else energy_error.new_tensor(float(force_error.numel())),
        penalty(energy_error), zero if force_error is None else penalty(force_error),
        (energy_error * batch["n_atoms"]).abs().sum().detach(),
        zero if force_error is None else force_error.abs().sum().detach()])


def combined_loss(config: TrainConfig, sums: Tensor) -> Tensor:
    """Weighted mean energy and force penalties from pass sums."""
    loss = config.loss.energy_weight * sums[_E_LOSS] / sums[_N_CONF].clamp(min=1)
    return loss + config.loss.force_weight * sums[_F_LOSS] / sums[_N_COMP].clamp(min=1)


def pass_metrics(config: TrainConfig, sums: Tensor) -> dict[str, float]:
    """Loss, energy MAE (meV) and force MAE (meV/Å) from pass sums; NaN where nothing was seen."""
    def ratio(num: int, den: int, factor: float = 1.0) -> float:
        return float(sums[num] / sums[den] * factor) if sums[den] > 0 else math.nan

    loss = float(combined_loss(config, sums)) if sums[_N_CONF] > 0 else math.nan
    return {"loss": loss, "energy_mae_meV": ratio(_E_ABS, _N_CONF, 1000.0), "force_mae_meV_per_A": ratio(_F_ABS, _N_COMP, 1000.0)}


@dataclass
class Setup:
    """What a run trains on: the store, the selection of each split and whether forces are used."""

    store: Store
    splits: dict[str, np.ndarray]
    selected: dict[str, np.ndarray]
    forces: bool


def prepare_data(config: TrainConfig, splits: dict[str, np.ndarray] | None) -> Setup:
    """Open the store and select the usable conformers of each split (new splits from the config when None)."""
    store = open_store(config.store)
    for name in [config.target, *config.partial_charges]:
        if name not in store.columns:
            raise TnqError(f"{config.store} has no column {name!r} (version {store.version}); choose another "
                           "target or state, or add the column (tnq-data charges)")
    molecule = store.column("molecule")
    if splits is None:
        splits = split_molecules(store.n_molecules, config.split.model_dump(exclude={"seed"}), config.split.seed)
        splits = cover_elements(splits, molecule_elements(store.column("z"), store.column("atom_offset"), molecule))
    usable = usable_conformers(store, config.partial_charges, config.target)
    selected = {name: conformer_mask(molecule, ids) & usable for name, ids in splits.items()}
    if not selected["train"].any():
        raise TnqError(f"the training split of {config.store} is empty; lower the val/test fractions or use more molecules")
    return Setup(store, splits, selected, "forces" in store.columns)


def build_potential(config: TrainConfig, setup: Setup) -> Potential:
    """A new Potential: references fitted on the training split, scale from its forces (or residual energies)."""
    store, train = setup.store, setup.selected["train"]
    offsets, z = store.column("atom_offset"), store.column("z")
    rows = np.flatnonzero(train)
    atom_rows = np.repeat(train, np.diff(offsets))
    sub_offsets = np.concatenate([[0], np.cumsum(np.diff(offsets)[rows])])
    energy, charge = store.column(config.target)[rows], store.column("total_charge")[rows]
    per_charge = charge if config.references == "element_charge" else None
    refs, charges = fit_references(z[atom_rows], sub_offsets, energy, config.model.max_z, per_charge)
    residual = energy - reference_energy(refs, charges, z[atom_rows], sub_offsets, charge)
    spread = float(np.sqrt(np.mean(store.column("forces")[atom_rows].astype(np.float64) ** 2))) if setup.forces \
        else float(np.std(residual))
    model_args = config.model.model_dump(exclude={"dtype"})
    model = TensorNet(**model_args, state=config.state, dtype=getattr(torch, config.model.dtype))
    return Potential(model, refs, charges, scale=spread if spread > 0 else 1.0, shift=0.0)


class Trainer:
    """The optimiser, schedules, EMA and early-stopping state of one run, and its epochs."""

    def __init__(self, config: TrainConfig, setup: Setup, potential: Potential, env: Distributed) -> None:
        self.config, self.setup, self.env = config, setup, env
        self.potential = potential.to(env.device)
        self.dtype = next(potential.parameters()).dtype
        module = ForceModel(self.potential, setup.forces)
        self.model = nn.parallel.DistributedDataParallel(module) if env.world_size > 1 else module
        decay = config.optim.ema_decay
        self.ema = AveragedModel(self.potential, multi_avg_fn=get_ema_multi_avg_fn(decay)) if decay > 0 else None
        self.optimizer = torch.optim.AdamW(self.potential.parameters(), lr=config.optim.lr,
                                           weight_decay=config.optim.weight_decay)
        self.plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
            self.optimizer, factor=config.optim.plateau_factor, patience=config.optim.plateau_patience,
            min_lr=config.optim.min_lr)
        self.epoch, self.step, self.best, self.bad_epochs = 0, 0, math.inf, 0
        self.history: list[dict] = []
        self.datasets = {name: StoreBatches(setup.store, mask, config.batch_size, target=config.target,
                                            partial_charges=config.partial_charges, forces=setup.forces,
                                            shuffle=name == "train", seed=config.seed,
                                            buffer_shards=config.buffer_shards, rank=env.rank,
                                            world_size=env.world_size)
                         for name, mask in setup.selected.items() if name != "test"}

    @property
    def averaged(self) -> Potential:
        """The potential to evaluate and ship: the moving average when enabled."""
        return self.ema.module if self.ema is not None else self.potential

    def state(self) -> dict:
        """Everything besides the averaged weights that resuming needs."""
        return {"weights": self.potential.state_dict(), "optimizer": self.optimizer.state_dict(),
                "plateau": self.plateau.state_dict(), "ema": self.ema.state_dict() if self.ema else None,
                "epoch": self.epoch, "step": self.step, "best": self.best, "bad_epochs": self.bad_epochs,
                "history": self.history}

    def load_state(self, state: dict) -> None:
        """Continue from `state` (see `state`)."""
        self.potential.load_state_dict(state["weights"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.plateau.load_state_dict(state["plateau"])
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])
        self.epoch, self.step, self.best = state["epoch"], state["step"], state["best"]
        self.bad_epochs, self.history = state["bad_epochs"], state["history"]

    def _warm_up(self) -> None:
        warmup = self.config.optim.warmup_steps
        if self.step < warmup:
            for group in self.optimizer.param_groups:
                group["lr"] = self.config.optim.lr * (self.step + 1) / warmup

    def _steps(self, dataset: StoreBatches) -> int:
        """Batches every rank runs this epoch: the fewest any rank has, so DDP ranks stay in step."""
        count = torch.tensor(dataset.n_batches(self.config.num_workers), device=self.env.device)
        return int(self.env.all_reduce(count, dist.ReduceOp.MIN))

    def train_epoch(self, quiet: bool) -> dict[str, float]:
        """One pass over this rank's training shards; returns its metrics (averaged over ranks)."""
        dataset = self.datasets["train"]
        dataset.set_epoch(self.epoch)
        steps = self._steps(dataset)
        self.model.train()
        sums = torch.zeros(6, dtype=torch.float64, device=self.env.device)
        title = f"epoch {self.epoch + 1}/{self.config.max_epochs}"
        with progress_bar(title, steps, quiet=quiet or not self.env.is_main) as bar:
            for _, raw in zip(range(steps), make_loader(dataset, self.config.num_workers)):
                batch = to_device(raw, self.env.device, self.dtype)
                self._warm_up()
                batch_sums = loss_sums(self.config, batch, *self.model(batch))
                self.optimizer.zero_grad(set_to_none=True)
                combined_loss(self.config, batch_sums).backward()
                nn.utils.clip_grad_norm_(self.potential.parameters(), self.config.optim.clip_grad_norm)
                self.optimizer.step()
                if self.ema is not None:
                    self.ema.update_parameters(self.potential)
                self.step += 1
                sums += batch_sums.detach()
                running = pass_metrics(self.config, sums)
                bar.update(0, advance=1, status=f"E {running['energy_mae_meV']:.1f} meV  F {running['force_mae_meV_per_A']:.1f} meV/Å")
        return pass_metrics(self.config, self.env.all_reduce(sums))

    def validate(self) -> dict[str, float]:
        """Metrics of the averaged potential on the validation split (all ranks together)."""
        model = ForceModel(self.averaged, self.setup.forces).eval()
        sums = torch.zeros(6, dtype=torch.float64, device=self.env.device)
        for raw in make_loader(self.datasets["val"], self.config.num_workers):
            batch = to_device(raw, self.env.device, self.dtype)
            energy, forces = model(batch)
            sums += loss_sums(self.config, batch, energy.detach(), None if forces is None else forces.detach())
        return pass_metrics(self.config, self.env.all_reduce(sums))

    def end_epoch(self, train: dict[str, float], val: dict[str, float], seconds: float) -> bool:
        """Record the epoch, step the plateau schedule; returns whether the monitored loss improved."""
        monitored = val["loss"] if math.isfinite(val["loss"]) else train["loss"]
        if self.step >= self.config.optim.warmup_steps:
            self.plateau.step(monitored)
        self.history.append({"epoch": self.epoch + 1, "lr": self.optimizer.param_groups[0]["lr"],
                             **{f"train_{k}": v for k, v in train.items()}, **{f"val_{k}": v for k, v in val.items()},
                             "seconds": round(seconds, 3)})
        self.epoch += 1
        improved = monitored < self.best
        self.best, self.bad_epochs = (monitored, 0) if improved else (self.best, self.bad_epochs + 1)
        return improved

    @property
    def stop_early(self) -> bool:
        return self.bad_epochs >= self.config.optim.early_stopping_patience


def write_metrics(history: list[dict], path: Path) -> None:
    """The per-epoch metrics as CSV, one row per epoch."""
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(history[0]))
        writer.writeheader()
        writer.writerows(history)


def _save(trainer: Trainer, path: Path) -> None:
    config, store = trainer.config, trainer.setup.store
    save_checkpoint(path, trainer.averaged, config=config.model_dump(mode="json"), train_state=trainer.state(),
                    store_version=store.version, store=str(config.store), forces=trainer.setup.forces,
                    package_version=package_version("tnq"))


def _resume(trainer: Trainer, run_dir: Path, force: bool) -> None:
    extra = read_checkpoint(run_dir / "last.pt")["extra"]
    store = trainer.setup.store
    if extra["store_version"] != store.version and not force:
        raise TnqError(f"{run_dir} was trained on store version {extra['store_version']} but {store.root} is at "
                       f"{store.version}; pass --force to continue on the new version")
    trainer.load_state(extra["train_state"])


def _write_inputs(config: TrainConfig, setup: Setup) -> None:
    out = config.out
    write_config(config, out / "config.yaml")
    save_splits(setup.splits, out / "splits.npz")
    record = {"store": str(config.store), "version": setup.store.version, "parent": setup.store.parent,
              "target": config.target, "columns": ["z", "pos", config.target, "total_charge", "multiplicity",
                                                   *config.partial_charges] + (["forces"] if setup.forces else []),
              "conformers": {name: int(mask.sum()) for name, mask in setup.selected.items()}}
    (out / "data.json").write_text(json.dumps(record, indent=2) + "\n")


def _final_outputs(trainer: Trainer) -> None:
    out = trainer.config.out
    learning_curves(trainer.history, out / "learning_curves.png")
    extra = read_checkpoint(out / "best.pt")["extra"]
    batches = split_batches(trainer.config.store, trainer.config, "test", extra, trainer.setup.splits)
    if not batches.selected.any():
        return
    predictions = predict(load_potential(out / "best.pt", trainer.env.device), batches, trainer.env.device)
    parity_plots(predictions, out / "parity.png")
    write_report({**error_report(predictions), "store_version": trainer.setup.store.version, "split": "test"},
                 out / "eval_test.json")


def train(config: TrainConfig, *, resume: bool = False, force: bool = False, quiet: bool = False) -> Path:
    """Train (or with `resume` continue) the run in `config.out`; returns the run directory."""
    env = init_distributed(config.device)
    out = Path(config.out)
    if resume and not (out / "last.pt").is_file():
        raise TnqError(f"nothing to resume in {out}: no last.pt; start a new run without --resume")
    if not resume and (out / "last.pt").exists():
        raise TnqError(f"{out} already holds a run; pass --resume to continue it or choose another --out")
    setup = prepare_data(config, load_splits(out / "splits.npz") if resume else None)
    torch.manual_seed(config.seed)
    trainer = Trainer(config, setup, build_potential(config, setup), env)
    if resume:
        _resume(trainer, out, force)
    if env.is_main:
        out.mkdir(parents=True, exist_ok=True)
        _write_inputs(config, setup)
    while trainer.epoch < config.max_epochs and not trainer.stop_early:
        start = time.perf_counter()
        train_metrics = trainer.train_epoch(quiet)
        improved = trainer.end_epoch(train_metrics, trainer.validate(), time.perf_counter() - start)
        if env.is_main:
            write_metrics(trainer.history, out / "metrics.csv")
            _save(trainer, out / "last.pt")
            if improved:
                _save(trainer, out / "best.pt")
    if env.is_main:
        _final_outputs(trainer)
    if env.world_size > 1:
        dist.barrier()
        dist.destroy_process_group()
    return out


if __name__ == "__main__":
    from .cli import main

    main()
