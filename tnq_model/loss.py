"""The training loss and pass metrics: weighted energy, force, charge and dipole errors, summed over batches and
ranks."""

import math
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.nn import functional as F

from .config import TrainConfig
from .data import Batch
from .dipole import molecular_dipole

#: Sums accumulated over a pass: conformers, force components, energy loss, force loss, |dE| (eV), |dF| (eV/Å),
#: |dE| / atoms (eV/atom); atoms with a charge target, charge loss, |dq| (e); dipole components with a target,
#: dipole loss, |dmu| (e·Å).
_N_CONF, _N_COMP, _E_LOSS, _F_LOSS, _E_ABS, _F_ABS, _E_ABS_ATOM, _N_Q, _Q_LOSS, _Q_ABS, _N_D, _D_LOSS, _D_ABS = range(13)
N_SUMS = 13


@dataclass
class LossScales:
    """Training-set scales: sigma_E, spread of per-atom energies after the references (eV/atom), and
    sigma_F, RMS force component (eV/Å; 1 without forces); sigma_q, RMS of the charge target (e) and
    sigma_mu, RMS dipole component (e·Å), 1 when not supervised. Errors are divided by them in the scaled loss,
    sigma_E and sigma_F also in the monitored metric."""

    energy: float
    forces: float
    charges: float = 1.0
    dipole: float = 1.0


def loss_sums(config: TrainConfig, scales: LossScales, batch: Batch, energy: Tensor, forces: Tensor | None,
              charges: Tensor | None = None) -> Tensor:
    """The pass sums (see `_N_CONF`...) of one batch; energy errors are per atom, in float64. `charges` (N,) e
    are the learned charges (None for a model without them)."""
    def penalty(error: Tensor) -> Tensor:
        if config.loss.kind == "huber":
            return F.huber_loss(error, torch.zeros_like(error), reduction="sum", delta=config.loss.huber_delta)
        return error.abs().sum() if config.loss.kind == "l1" else error.pow(2).sum()

    def finite_error(pred: Tensor, target: Tensor, scale: float) -> list[Tensor]:
        """count, penalty and |error| sum of `pred - target` where the target is finite."""
        known = torch.isfinite(target)
        error = (pred.double() - torch.where(known, target, torch.zeros_like(target)).double()) * known
        return [known.sum().double(), penalty(error / scale if config.loss.scaled else error),
                error.abs().sum().detach()]

    energy_error = (energy.double() - batch["energy"]) / batch["n_atoms"]
    zero = energy_error.new_zeros(())
    force_error = None if forces is None else (forces - batch["forces"]).double()
    scaled = config.loss.scaled
    charge_sums = [zero] * 3
    if charges is not None and "charge_target" in batch:
        charge_sums = finite_error(charges, batch["charge_target"], scales.charges)
    dipole_sums = [zero] * 3
    if charges is not None and config.supervises_dipole:
        dipole = molecular_dipole(charges, batch["pos"], batch["z"], batch["batch"], len(energy))
        dipole_sums = finite_error(dipole, batch["dipole"], scales.dipole)
    return torch.stack([
        energy_error.new_tensor(float(len(energy_error))),
        zero if force_error is None else energy_error.new_tensor(float(force_error.numel())),
        penalty(energy_error / scales.energy if scaled else energy_error),
        zero if force_error is None else penalty(force_error / scales.forces if scaled else force_error),
        (energy_error * batch["n_atoms"]).abs().sum().detach(),
        zero if force_error is None else force_error.abs().sum().detach(),
        energy_error.abs().sum().detach(), *charge_sums, *dipole_sums])


def combined_loss(config: TrainConfig, sums: Tensor) -> Tensor:
    """Weighted mean energy, force, charge and dipole penalties from pass sums."""
    loss = config.loss.energy_weight * sums[_E_LOSS] / sums[_N_CONF].clamp(min=1)
    loss = loss + config.loss.force_weight * sums[_F_LOSS] / sums[_N_COMP].clamp(min=1)
    if config.charge_target is not None:
        loss = loss + config.loss.charge_weight * sums[_Q_LOSS] / sums[_N_Q].clamp(min=1)
    if config.supervises_dipole:
        loss = loss + config.loss.dipole_weight * sums[_D_LOSS] / sums[_N_D].clamp(min=1)
    return loss


def pass_metrics(config: TrainConfig, scales: LossScales, sums: Tensor) -> dict[str, float]:
    """Loss, energy MAE (meV, meV/atom), force MAE (meV/Å) and the energy_force score (energy MAE per atom
    / sigma_E + force MAE / sigma_F, dimensionless) from pass sums; with a charge target the charge MAE (e), with
    a dipole term the dipole MAE per component (e·Å); NaN where nothing was seen."""
    def ratio(num: int, den: int, factor: float = 1.0) -> float:
        return float(sums[num] / sums[den] * factor) if sums[den] > 0 else math.nan

    loss = float(combined_loss(config, sums)) if sums[_N_CONF] > 0 else math.nan
    score = ratio(_E_ABS_ATOM, _N_CONF) / scales.energy
    if sums[_N_COMP] > 0:
        score += ratio(_F_ABS, _N_COMP) / scales.forces
    metrics = {"loss": loss, "energy_mae_meV": ratio(_E_ABS, _N_CONF, 1000.0),
               "energy_mae_meV_per_atom": ratio(_E_ABS_ATOM, _N_CONF, 1000.0),
               "force_mae_meV_per_A": ratio(_F_ABS, _N_COMP, 1000.0), "energy_force": score}
    if config.charge_target is not None:
        metrics["charge_mae_e"] = ratio(_Q_ABS, _N_Q)
    if config.supervises_dipole:
        metrics["dipole_mae_eA"] = ratio(_D_ABS, _N_D)
    return metrics
