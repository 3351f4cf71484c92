"""The training loss and pass metrics: weighted energy and force errors, summed over batches and ranks."""

import math
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.nn import functional as F

from .config import TrainConfig
from .data import Batch

#: Sums accumulated over a pass: conformers, force components, energy loss, force loss, |dE| (eV), |dF| (eV/Å),
#: |dE| / atoms (eV/atom).
_N_CONF, _N_COMP, _E_LOSS, _F_LOSS, _E_ABS, _F_ABS, _E_ABS_ATOM = range(7)
N_SUMS = 7


@dataclass
class LossScales:
    """Training-set scales: sigma_E, spread of per-atom energies after the references (eV/atom), and
    sigma_F, RMS force component (eV/Å; 1 without forces). Errors are divided by them in the scaled loss
    and in the monitored metric."""

    energy: float
    forces: float


def loss_sums(config: TrainConfig, scales: LossScales, batch: Batch, energy: Tensor, forces: Tensor | None) -> Tensor:
    """The pass sums (see `_N_CONF`...) of one batch; energy errors are per atom, in float64."""
    def penalty(error: Tensor) -> Tensor:
        if config.loss.kind == "huber":
            return F.huber_loss(error, torch.zeros_like(error), reduction="sum", delta=config.loss.huber_delta)
        return error.abs().sum() if config.loss.kind == "l1" else error.pow(2).sum()

    energy_error = (energy.double() - batch["energy"]) / batch["n_atoms"]
    zero = energy_error.new_zeros(())
    force_error = None if forces is None else (forces - batch["forces"]).double()
    scaled = config.loss.scaled
    return torch.stack([
        energy_error.new_tensor(float(len(energy_error))),
        zero if force_error is None else energy_error.new_tensor(float(force_error.numel())),
        penalty(energy_error / scales.energy if scaled else energy_error),
        zero if force_error is None else penalty(force_error / scales.forces if scaled else force_error),
        (energy_error * batch["n_atoms"]).abs().sum().detach(),
        zero if force_error is None else force_error.abs().sum().detach(),
        energy_error.abs().sum().detach()])


def combined_loss(config: TrainConfig, sums: Tensor) -> Tensor:
    """Weighted mean energy and force penalties from pass sums."""
    loss = config.loss.energy_weight * sums[_E_LOSS] / sums[_N_CONF].clamp(min=1)
    return loss + config.loss.force_weight * sums[_F_LOSS] / sums[_N_COMP].clamp(min=1)


def pass_metrics(config: TrainConfig, scales: LossScales, sums: Tensor) -> dict[str, float]:
    """Loss, energy MAE (meV, meV/atom), force MAE (meV/Å) and the energy_force score (energy MAE per atom
    / sigma_E + force MAE / sigma_F, dimensionless) from pass sums; NaN where nothing was seen."""
    def ratio(num: int, den: int, factor: float = 1.0) -> float:
        return float(sums[num] / sums[den] * factor) if sums[den] > 0 else math.nan

    loss = float(combined_loss(config, sums)) if sums[_N_CONF] > 0 else math.nan
    score = ratio(_E_ABS_ATOM, _N_CONF) / scales.energy
    if sums[_N_COMP] > 0:
        score += ratio(_F_ABS, _N_COMP) / scales.forces
    return {"loss": loss, "energy_mae_meV": ratio(_E_ABS, _N_CONF, 1000.0),
            "energy_mae_meV_per_atom": ratio(_E_ABS_ATOM, _N_CONF, 1000.0),
            "force_mae_meV_per_A": ratio(_F_ABS, _N_COMP, 1000.0), "energy_force": score}
