"""Neural-network building blocks of tnq: TensorNet, its layers, radial basis, neighbour lists, state, and the
physical terms (ZBL repulsion, damped Coulomb, charge head) that ``TensorNet(physics=...)`` adds."""

from .charges import ChargeHead
from .coulomb import DampedCoulomb
from .neighbors import neighbor_pairs
from .physics import PHYSICS_TERMS
from .state import multiplicity_to_spin
from .tensornet import TensorNet
from .zbl import ZBLRepulsion

__all__ = ["PHYSICS_TERMS", "ChargeHead", "DampedCoulomb", "TensorNet", "ZBLRepulsion", "multiplicity_to_spin", "neighbor_pairs"]
