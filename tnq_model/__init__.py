"""tnq_model: charge- and spin-aware TensorNet potentials (model, checkpoints, export, ASE).

The ASE calculator lives in ``tnq_model.ase`` (imported on demand).
"""

from tnq_core.errors import register_one_line_error

from .checkpoint import Predictor, load, load_potential, save_checkpoint
from .export import export_torchscript
from .nn import TensorNet, multiplicity_to_spin
from .nn.errors import ModelInputError
from .potential import Potential
from .torchmdnet import from_torchmdnet

register_one_line_error(ModelInputError)

__all__ = [
    "ModelInputError",
    "Potential",
    "Predictor",
    "TensorNet",
    "export_torchscript",
    "from_torchmdnet",
    "load",
    "load_potential",
    "multiplicity_to_spin",
    "save_checkpoint",
]
