"""Training a Potential on a store: splits, references, the loop (AdamW, warm-up, plateau, EMA, early stopping),
checkpoints that resume exactly, and DDP (`torchrun --nproc-per-node N -m tnq_model.train --store ...`).

Only rank 0 writes to the run directory. Run directory: config.yaml, splits.npz, data.json, metrics.csv,
last.pt, best.pt, eval_test.json, learning_curves.png, parity.png.
"""

import csv
import json
import math
import time
from dataclasses import dataclass
from importlib.metadata import version as package_version
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from tnq_core.errors import TnqError
from tnq_core.progress import progress_bar
from tnq_data.store import open_store
from tnq_data.store.reader import Store

from .checkpoint import load_potential, read_checkpoint, save_checkpoint
from .config import TrainConfig, write_config
from .data import Batch, StoreBatches, make_loader, potential_inputs, to_device, usable_conformers
from .distributed import Distributed, init_distributed
from .evaluate import error_report, predict, split_batches, write_report
from .loss import N_SUMS, LossScales, combined_loss, loss_sums, pass_metrics
from .nn.tensornet import TensorNet
from .plots import learning_curves, parity_plots
from .potential import Potential
from .references import fit_references
from .splits import conformer_mask, cover_elements, load_splits, molecule_elements, save_splits, split_molecules


class ForceModel(nn.Module):
    """The Potential as one module for DDP: batch -> (energies (B,) eV, forces (N, 3) eV/Å or None)."""

    def __init__(self, potential: Potential, forces: bool) -> None:
        super().__init__()
        self.potential, self.forces = potential, forces

    def forward(self, batch: Batch) -> tuple[Tensor, Tensor | None]:
        args = potential_inputs(batch)
        if self.forces:
            return self.potential.energy_and_forces(*args, create_graph=self.training)
        with torch.set_grad_enabled(self.training):
            return self.potential(*args), None


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


def build_potential(config: TrainConfig, setup: Setup) -> tuple[Potential, LossScales]:
    """A new Potential (references fitted on the training split, network scale from its forces, or from its
    residual energies without forces) and the training split's loss scales."""
    store, train = setup.store, setup.selected["train"]
    offsets, z = store.column("atom_offset"), store.column("z")
    rows = np.flatnonzero(train)
    atom_rows = np.repeat(train, np.diff(offsets))
    n_atoms = np.diff(offsets)[rows]
    sub_offsets = np.concatenate([[0], np.cumsum(n_atoms)])
    energy = store.column(config.target)[rows].astype(np.float64)
    charge, multiplicity = store.column("total_charge")[rows], store.column("multiplicity")[rows]
    refs = fit_references(z[atom_rows], sub_offsets, energy, config.model.max_z, config.references, charge,
                          multiplicity)
    residual = energy - refs.energy(z[atom_rows], sub_offsets, charge, multiplicity)
    energy_scale = float(np.sqrt(np.mean((residual / n_atoms) ** 2)))
    force_scale = float(np.sqrt(np.mean(store.column("forces")[atom_rows].astype(np.float64) ** 2))) \
        if setup.forces else 1.0
    spread = force_scale if setup.forces else float(np.std(residual))
    model_args = config.model.model_dump(exclude={"dtype"})
    model = TensorNet(**model_args, state=config.state, dtype=getattr(torch, config.model.dtype))
    potential = Potential(model, refs.atom_refs, refs.charges, scale=spread if spread > 0 else 1.0, shift=0.0,
                          charge_offsets=refs.charge_offsets, ref_multiplicities=refs.multiplicities,
                          multiplicity_offsets=refs.multiplicity_offsets)
    return potential, LossScales(energy_scale if energy_scale > 0 else 1.0, force_scale if force_scale > 0 else 1.0)


class Trainer:
    """The optimiser, schedules, EMA and early-stopping state of one run, and its epochs."""

    def __init__(self, config: TrainConfig, setup: Setup, potential: Potential, scales: LossScales,
                 env: Distributed) -> None:
        self.config, self.setup, self.env, self.scales = config, setup, env, scales
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
        sums = torch.zeros(N_SUMS, dtype=torch.float64, device=self.env.device)
        title = f"epoch {self.epoch + 1}/{self.config.max_epochs}"
        with progress_bar(title, steps, quiet=quiet or not self.env.is_main) as bar:
            for _, raw in zip(range(steps), make_loader(dataset, self.config.num_workers)):
                batch = to_device(raw, self.env.device, self.dtype)
                self._warm_up()
                batch_sums = loss_sums(self.config, self.scales, batch, *self.model(batch))
                self.optimizer.zero_grad(set_to_none=True)
                combined_loss(self.config, batch_sums).backward()
                nn.utils.clip_grad_norm_(self.potential.parameters(), self.config.optim.clip_grad_norm)
                self.optimizer.step()
                if self.ema is not None:
                    self.ema.update_parameters(self.potential)
                self.step += 1
                sums += batch_sums.detach()
                running = pass_metrics(self.config, self.scales, sums)
                bar.update(0, advance=1, status=f"E {running['energy_mae_meV']:.1f} meV  F {running['force_mae_meV_per_A']:.1f} meV/Å")
        return pass_metrics(self.config, self.scales, self.env.all_reduce(sums))

    def validate(self) -> dict[str, float]:
        """Metrics of the averaged potential on the validation split (all ranks together)."""
        model = ForceModel(self.averaged, self.setup.forces).eval()
        sums = torch.zeros(N_SUMS, dtype=torch.float64, device=self.env.device)
        for raw in make_loader(self.datasets["val"], self.config.num_workers):
            batch = to_device(raw, self.env.device, self.dtype)
            energy, forces = model(batch)
            sums += loss_sums(self.config, self.scales, batch, energy.detach(),
                              None if forces is None else forces.detach())
        return pass_metrics(self.config, self.scales, self.env.all_reduce(sums))

    def end_epoch(self, train: dict[str, float], val: dict[str, float], seconds: float) -> bool:
        """Record the epoch, step the plateau schedule; returns whether the monitored metric improved."""
        key = self.config.optim.monitor
        monitored = val[key] if math.isfinite(val[key]) else train[key]
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
    if extra["train_state"] is None:
        raise TnqError(f"{run_dir}/last.pt was written by an older tnq (checkpoint format 2), whose training state "
                       "this version cannot continue; start a new run (the trained model itself still loads)")
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
    batches = split_batches(trainer.setup.store, trainer.config, "test", trainer.setup.forces, trainer.setup.splits)
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
    trainer = Trainer(config, setup, *build_potential(config, setup), env)
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
