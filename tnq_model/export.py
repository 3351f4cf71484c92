"""TorchScript export of a trained Potential, for use without Python tnq (e.g. C++ or OpenMM-Torch)."""

import json
from os import PathLike
from pathlib import Path
from typing import Union

import torch

from tnq_core.errors import TnqError

from .checkpoint import load_potential

#: Name of the JSON config stored inside the exported file (``torch.jit.load(..., _extra_files=...)``).
CONFIG_FILE = "tnq_config.json"


def export_torchscript(checkpoint_path: Union[str, PathLike], out_path: Union[str, PathLike]) -> Path:
    """Script the Potential of a checkpoint and save it to ``out_path``; returns the path.

    The scripted module has ``forward(z, pos, batch, total_charge, multiplicity, partial_charges=None)``
    -> energies (B,) eV and ``energy_and_forces(...)`` -> (energies eV, forces eV/Å), as Potential, physical
    terms (``model.physics``) included; its ``model.energy_parts(...)`` gives the network part, the learned
    charges and the Coulomb and ZBL energies separately. A model with the D4 term (tad-dftd4, which TorchScript
    cannot compile) is refused.
    """
    out_path = Path(out_path)
    if not out_path.parent.is_dir():
        raise TnqError(f"cannot write {out_path}: folder {out_path.parent} does not exist; create it or choose another out_path")
    potential = load_potential(checkpoint_path)
    if "d4" in potential.model.physics:
        raise TnqError(
            f"cannot export {checkpoint_path} to TorchScript: its physics term 'd4' (tad-dftd4) cannot be scripted; "
            "use the checkpoint with tnq_model.load or the ASE calculator instead"
        )
    scripted = torch.jit.script(potential)
    torch.jit.save(scripted, str(out_path), _extra_files={CONFIG_FILE: json.dumps(potential.config())})
    return out_path
