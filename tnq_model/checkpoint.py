"""Checkpoints of a Potential (config + weights + extras) and a numpy Predictor built from one.

A checkpoint is a ``torch.save`` dict: ``format`` ("tnq-model"), ``format_version`` (3), ``config``
(:meth:`Potential.config`, with the model's ``physics`` terms; a config without them is read as
``physics=[]``), ``state_dict`` and ``extra`` (whatever the caller passed, e.g. optimiser
state and training config). It is read with ``weights_only=True``: extras must be tensors, numbers,
strings, lists, tuples and dicts of those. Versions 1 and 2 are read too (:func:`upgrade_v1`,
:func:`upgrade_v2`); their training state cannot be resumed.
"""

import os
import re
from os import PathLike
from pathlib import Path
from typing import Any, Dict, Optional, Tuple, Union

import numpy as np
import torch
from numpy.typing import ArrayLike

from tnq_core.errors import TnqError

from .dipole import molecular_dipole
from .nn.errors import ModelInputError
from .nn.state import PARTIAL_CHARGE_PREFIX
from .potential import Potential

FORMAT = "tnq-model"
FORMAT_VERSION = 3
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


def upgrade_v2(payload: Dict[str, Any]) -> Dict[str, Any]:
    """A version 2 payload as version 3 writes it (the model; not the training state).

    Version 3 added per-state reference offsets (none in a version 2 model: its per-charge references,
    if any, stay one ``atom_refs`` column per total charge) and dropped the unused query and key of
    spooky embeddings of partial charges (attention over one atom has the weight 1).
    """
    config = dict(payload["config"])
    charges = config["ref_charges"]
    config.update(ref_multiplicities=[], atom_ref_columns=max(1, len(charges)))
    tensornet = config["tensornet"]
    per_atom = [k for k, name in enumerate(tensornet["state"]) if name.startswith(PARTIAL_CHARGE_PREFIX)]
    dropped = tuple(f"model.electronic.{k}.{part}." for k in per_atom for part in ("query", "key")) \
        if tensornet["state_mode"] == "spooky" else ()
    weights = {name: value for name, value in payload["state_dict"].items() if not name.startswith(dropped)}
    weights.update(charge_offsets=torch.zeros(len(charges), dtype=torch.float64),
                   ref_multiplicities=torch.zeros(0, dtype=torch.long),
                   multiplicity_offsets=torch.zeros(0, dtype=torch.float64))
    return {**payload, "format_version": 3, "config": config, "state_dict": weights,
            "extra": {**payload["extra"], "train_state": None} if "train_state" in payload["extra"] else payload["extra"]}


def save_checkpoint(path: Union[str, PathLike], potential: Potential, **extra: Any) -> Path:
    """Write ``potential`` and the ``extra`` items to ``path``; returns the path. The file is written whole
    under a temporary name and then renamed, so an interrupt never leaves a truncated checkpoint behind."""
    path = Path(path)
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": potential.config(),
        "state_dict": potential.state_dict(),
        "extra": extra,
    }
    partial = path.with_name(f".{path.name}.partial")
    try:
        torch.save(payload, partial)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
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
    if payload["format_version"] <= 2:
        payload = upgrade_v2(payload)
    return payload


def load_potential(path: Union[str, PathLike], device: Union[str, torch.device] = "cpu") -> Potential:
    """The trained Potential stored at ``path``, in eval mode on ``device``."""
    payload = read_checkpoint(path)
    try:
        potential = Potential.from_config(payload["config"])
    except ModelInputError as err:
        raise TnqError(f"cannot load {path}: {err}") from None
    potential.load_state_dict(payload["state_dict"])
    return potential.to(device).eval()


def check_states(z: np.ndarray, batch: np.ndarray, total_charge: np.ndarray, multiplicity: np.ndarray) -> None:
    """Raise TnqError for a state no molecule can have: multiplicity below 1, above the electron count
    plus 1, or of the wrong parity (N electrons allow 2S = N, N - 2, ..., so 2S + 1 and N have opposite parity).
    """
    electrons = np.bincount(batch, weights=z, minlength=len(total_charge)).astype(np.int64) - total_charge
    bad = (multiplicity < 1) | (multiplicity - 1 > electrons) | ((electrons + multiplicity) % 2 == 0)
    if bad.any():
        b = int(np.flatnonzero(bad)[0])
        raise TnqError(
            f"molecule {b} cannot have multiplicity {int(multiplicity[b])} with total charge {int(total_charge[b])}: "
            f"it has {int(electrons[b])} electrons, so 2S+1 must be {'odd' if electrons[b] % 2 == 0 else 'even'}, "
            "at least 1 and at most electrons + 1; fix the state"
        )


class Predictor:
    """Energies and forces of molecules from numpy arrays, with a trained Potential.

    A state the potential needs (``needs_charge``, ``needs_multiplicity``) must be passed: nothing is
    assumed. Impossible states (see :func:`check_states`) are refused.

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
        total_charge: Optional[int] = None,
        multiplicity: Optional[int] = None,
        partial_charges: Optional[ArrayLike] = None,
    ) -> Tuple[float, np.ndarray]:
        """Energy (eV, float64) and forces (N, 3) eV/Å of one molecule: z (N,), pos (N, 3) Å, total charge
        (e), multiplicity 2S+1, partial charges (N,) or (N, K) e."""
        batch = np.zeros(len(np.asarray(z)), dtype=np.int64)
        charge = None if total_charge is None else [total_charge]
        energy, forces = self.predict_batch(z, pos, batch, charge, None if multiplicity is None else [multiplicity],
                                            partial_charges)
        return float(energy[0]), forces

    def predict_batch(
        self,
        z: ArrayLike,
        pos: ArrayLike,
        batch: ArrayLike,
        total_charge: Optional[ArrayLike] = None,
        multiplicity: Optional[ArrayLike] = None,
        partial_charges: Optional[ArrayLike] = None,
    ) -> Tuple[np.ndarray, np.ndarray]:
        """Energies (B,) eV (float64) and forces (N, 3) eV/Å; batch (N,) molecule index, total_charge and
        multiplicity (B,)."""
        inputs = self._inputs(z, pos, batch, total_charge, multiplicity, partial_charges)
        energy, forces = self.potential.energy_and_forces(*inputs)
        return energy.detach().cpu().numpy(), forces.detach().cpu().numpy()

    def _inputs(self, z: ArrayLike, pos: ArrayLike, batch: ArrayLike, total_charge: Optional[ArrayLike],
                multiplicity: Optional[ArrayLike], partial_charges: Optional[ArrayLike]) -> tuple:
        """The Potential's arguments as tensors on its device, after refusing impossible states."""

        def tensor(value: Optional[ArrayLike], dtype: torch.dtype) -> Optional[torch.Tensor]:
            return None if value is None else torch.as_tensor(np.asarray(value), dtype=dtype, device=self._device)

        z, batch = np.asarray(z, dtype=np.int64), np.asarray(batch, dtype=np.int64)
        if total_charge is not None and multiplicity is not None:
            check_states(z, batch, np.asarray(total_charge, np.int64), np.asarray(multiplicity, np.int64))
        elif multiplicity is not None and np.any(np.asarray(multiplicity) < 1):
            raise TnqError(f"multiplicity {np.asarray(multiplicity).tolist()} is below 1; pass 2S+1 (1 singlet, 2 doublet)")
        return (tensor(z, torch.long), tensor(pos, self._dtype), tensor(batch, torch.long),
                tensor(total_charge, torch.long), tensor(multiplicity, torch.long),
                tensor(partial_charges, self._dtype))

    def charges_and_dipole(
        self,
        z: ArrayLike,
        pos: ArrayLike,
        total_charge: int,
        multiplicity: Optional[int] = None,
        partial_charges: Optional[ArrayLike] = None,
    ) -> Tuple[np.ndarray, np.ndarray]:
        """The learned atomic charges (N,) e of one molecule, summing to `total_charge`, and its dipole (3,) e·Å
        about the centre of mass, sum_i q_i (r_i - R_com); for a model with ``physics: [charges, ...]``."""
        if not self.potential.learns_charges:
            raise TnqError("this model learns no atomic charges; train it with `physics` including charges")
        inputs = self._inputs(z, pos, np.zeros(len(np.asarray(z)), dtype=np.int64), [total_charge],
                              None if multiplicity is None else [multiplicity], partial_charges)
        with torch.no_grad():
            _, parts = self.potential.energy_and_parts(*inputs)
            z_t, pos_t, batch = inputs[:3]
            charges = parts["charges"]
            dipole = molecular_dipole(charges, pos_t, z_t, batch, 1)[0]
        return charges.cpu().numpy().astype(np.float64), dipole.cpu().numpy().astype(np.float64)


def load(path: Union[str, PathLike], device: Union[str, torch.device] = "cpu") -> Predictor:
    """A Predictor for the checkpoint at ``path`` (``tnq_model.load``)."""
    return Predictor(load_potential(path, device))
