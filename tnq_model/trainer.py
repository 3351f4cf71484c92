"""The Trainer: optimiser, schedules, moving average, early stopping and the epochs of one run."""

import math

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from tnq_core.progress import SILENT, Reporter

from .config import TrainConfig
from .data import Batch, StoreBatches, make_loader, potential_inputs, to_device
from .distributed import Distributed
from .loss import N_SUMS, LossScales, combined_loss, loss_sums, pass_metrics
from .potential import Potential
from .setup import Setup
from .summary import monitored


class ForceModel(nn.Module):
    """The Potential as one module for DDP: batch -> (energies (B,) eV, forces (N, 3) eV/Å or None, the
    network's ``energy_parts``: "network" and each physical term's (B,) energy, learned "charges" (N,) e)."""

    def __init__(self, potential: Potential, forces: bool) -> None:
        super().__init__()
        self.potential, self.forces = potential, forces

    def forward(self, batch: Batch) -> tuple[Tensor, Tensor | None, dict[str, Tensor]]:
        z, pos, *rest = potential_inputs(batch)
        with torch.set_grad_enabled(self.training or self.forces):
            if self.forces:
                pos = pos.detach().requires_grad_(True)
            energy, parts = self.potential.energy_and_parts(z, pos, *rest)
            forces = None
            if self.forces:
                forces = -torch.autograd.grad(energy.sum(), pos, create_graph=self.training)[0]
        return energy, forces, parts


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
                                            charge_target=config.charge_target, dipole=config.supervises_dipole,
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

    def train_epoch(self, reporter: Reporter) -> dict[str, float]:
        """One pass over this rank's training shards; returns its metrics (averaged over ranks)."""
        dataset = self.datasets["train"]
        dataset.set_epoch(self.epoch)
        steps = self._steps(dataset)
        self.model.train()
        sums = torch.zeros(N_SUMS, dtype=torch.float64, device=self.env.device)
        title = f"epoch {self.epoch + 1}/{self.config.max_epochs}"
        with (reporter if self.env.is_main else SILENT).bar(title, steps) as bar:
            for _, raw in zip(range(steps), make_loader(dataset, self.config.num_workers)):
                batch = to_device(raw, self.env.device, self.dtype)
                self._warm_up()
                energy, forces, parts = self.model(batch)
                batch_sums = loss_sums(self.config, self.scales, batch, energy, forces, parts.get("charges"))
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
            energy, forces, parts = model(batch)
            charges = parts.get("charges")
            sums += loss_sums(self.config, self.scales, batch, energy.detach(),
                              None if forces is None else forces.detach(), None if charges is None else charges.detach())
        return pass_metrics(self.config, self.scales, self.env.all_reduce(sums))

    def end_epoch(self, train: dict[str, float], val: dict[str, float], seconds: float) -> bool:
        """Record the epoch, step the plateau schedule; returns whether the monitored metric improved."""
        metrics = {**{f"train_{k}": v for k, v in train.items()}, **{f"val_{k}": v for k, v in val.items()}}
        value = monitored(metrics, self.config.optim.monitor)
        if self.step >= self.config.optim.warmup_steps:
            self.plateau.step(value)
        self.history.append({"epoch": self.epoch + 1, "lr": self.optimizer.param_groups[0]["lr"], **metrics,
                             "seconds": round(seconds, 3)})
        self.epoch += 1
        improved = value < self.best
        self.best, self.bad_epochs = (value, 0) if improved else (self.best, self.bad_epochs + 1)
        return improved

    @property
    def stop_early(self) -> bool:
        return self.bad_epochs >= self.config.optim.early_stopping_patience
