"""tnq_model: charge- and spin-aware TensorNet potentials (model, checkpoints, export, ASE).

The ASE calculator lives in ``tnq_model.ase`` (imported on demand).
"""

from .checkpoint import Predictor, load, load_potential, save_checkpoint
from .export import export_torchscript
from .nn import TensorNet, multiplicity_to_spin
from .potential import Potential

__all__ = [
    "Potential",
    "Predictor",
    "TensorNet",
    "export_torchscript",
    "load",
    "load_potential",
    "multiplicity_to_spin",
    "save_checkpoint",
]
