"""Checkpoints of a Potential (config + weights + extras) and a numpy Predictor built from one.

A checkpoint is a ``torch.save`` dict: ``format`` ("tnq-model"), ``format_version`` (2), ``config``
(:meth:`Potential.config`), ``state_dict`` and ``extra`` (whatever the caller passed, e.g. optimiser
state and training config). It is read with ``weights_only=True``: extras must be tensors, numbers,
strings, lists, tuples and dicts of those. Version 1 checkpoints are read too (see :func:`upgrade_v1`).
"""

import re
from os import PathLike
from pathlib import Path
from typing import Any, Dict, Optional, Tuple, Union

import numpy as np
import torch
from numpy.typing import ArrayLike

from tnq_data.errors import TnqError

from .potential import Potential

FORMAT = "tnq-model"
FORMAT_VERSION = 2
#: Version 1 named the interaction layers' radial MLP ``radial.{0,2,4}`` (an nn.Sequential with SiLUs).
_V1_RADIAL = re.compile(r"^(.*layers\.\d+\.radial\.)(\d)\.(weight|bias)$")


def upgrade_v1(value: Any) -> Any:
    """A version 1 payload (or part of one) with its parameter names as version 2 spells them.

    Parameter names are dict keys anywhere in the payload (weights, moving average, resume state);
    ``...layers.K.radial.{0,2,4}.`` becomes ``...layers.K.radial.layers.{0,1,2}.``.
    """
    if isinstance(value, dict):
        renamed = {}
        for key, item in value.items():
            match = _V1_RADIAL.match(key) if isinstance(key, str) else None
            if match:
                key = f"{match.group(1)}layers.{int(match.group(2)) // 2}.{match.group(3)}"
            renamed[key] = upgrade_v1(item)
        return renamed
    if isinstance(value, (list, tuple)):
        return type(value)(upgrade_v1(item) for item in value)
    return value


def save_checkpoint(path: Union[str, PathLike], potential: Potential, **extra: Any) -> Path:
    """Write ``potential`` and the ``extra`` items to ``path``; returns the path."""
    path = Path(path)
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": potential.config(),
        "state_dict": potential.state_dict(),
        "extra": extra,
    }
    torch.save(payload, path)
    return path


def read_checkpoint(path: Union[str, PathLike]) -> Dict[str, Any]:
    """The checkpoint dict at ``path``, checked to be a tnq model checkpoint this version can read."""
    path = Path(path)
    if not path.is_file():
        raise TnqError(f"checkpoint {path} does not exist; pass the .pt file written by training")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise TnqError(f"cannot read checkpoint {path}: {err.__class__.__name__}; is it a tnq checkpoint?") from err
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise TnqError(f"{path} is not a tnq model checkpoint (no format={FORMAT!r}); pass one written by save_checkpoint")
    if payload["format_version"] > FORMAT_VERSION:
        raise TnqError(
            f"checkpoint {path} has format version {payload['format_version']}, newer than this tnq reads "
            f"({FORMAT_VERSION}); upgrade tnq"
        )
    if payload["format_version"] == 1:
        payload = upgrade_v1(payload)
    return payload


def load_potential(path: Union[str, PathLike], device: Union[str, torch.device] = "cpu") -> Potential:
    """The trained Potential stored at ``path``, in eval mode on ``device``."""
    payload = read_checkpoint(path)
    potential = Potential.from_config(payload["config"])
    potential.load_state_dict(payload["state_dict"])
    return potential.to(device).eval()


class Predictor:
    """Energies and forces of molecules from numpy arrays, with a trained Potential.

    Attributes:
        potential: the Potential.
        partial_charge_names: the ``charges/<scheme>`` columns ``partial_charges`` must hold, in order.
    """

    def __init__(self, potential: Potential) -> None:
        self.potential = potential
        self.partial_charge_names = potential.model.partial_charge_names()
        parameter = next(potential.parameters())
        self._dtype, self._device = parameter.dtype, parameter.device

    def predict(
        self,
        z: ArrayLike,
        pos: ArrayLike,
        total_charge: int = 0,
        multiplicity: int = 1,
        partial_charges: Optional[ArrayLike] = None,
    ) -> Tuple[float, np.ndarray]:
        """Energy (eV) and forces (N, 3) in eV/Å of one molecule: z (N,), pos (N, 3) Å, charges (N,) or (N, K) e."""
        batch = np.zeros(len(np.asarray(z)), dtype=np.int64)
        energy, forces = self.predict_batch(z, pos, batch, [total_charge], [multiplicity], partial_charges)
        return float(energy[0]), forces

    def predict_batch(
        self,
        z: ArrayLike,
        pos: ArrayLike,
        batch: ArrayLike,
        total_charge: ArrayLike,
        multiplicity: ArrayLike,
        partial_charges: Optional[ArrayLike] = None,
    ) -> Tuple[np.ndarray, np.ndarray]:
        """Energies (B,) eV and forces (N, 3) eV/Å; batch (N,) molecule index, total_charge and multiplicity (B,)."""

        def tensor(value: ArrayLike, dtype: torch.dtype) -> torch.Tensor:
            return torch.as_tensor(np.asarray(value), dtype=dtype, device=self._device)

        charges = None if partial_charges is None else tensor(partial_charges, self._dtype)
        energy, forces = self.potential.energy_and_forces(
            tensor(z, torch.long),
            tensor(pos, self._dtype),
            tensor(batch, torch.long),
            tensor(total_charge, torch.long),
            tensor(multiplicity, torch.long),
            charges,
        )
        return energy.detach().cpu().numpy(), forces.detach().cpu().numpy()


def load(path: Union[str, PathLike], device: Union[str, torch.device] = "cpu") -> Predictor:
    """A Predictor for the checkpoint at ``path`` (``tnq_model.load``)."""
    return Predictor(load_potential(path, device))
