"""Neural-network building blocks of tnq: TensorNet, its layers, radial basis, neighbour lists, state."""

from .neighbors import neighbor_pairs
from .state import multiplicity_to_spin
from .tensornet import TensorNet

__all__ = ["TensorNet", "multiplicity_to_spin", "neighbor_pairs"]
