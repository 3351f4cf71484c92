"""One atom order per molecule: the atoms of a second structure put into the order of a first one.

The store keeps one atom order per molecule (the charges code pairs the first conformer's `z` with every
conformer's positions), so a source whose structures of one molecule list their atoms in different orders
must reorder them.
"""

import numpy as np
from scipy.optimize import linear_sum_assignment


def reference_order(z_ref: np.ndarray, pos_ref: np.ndarray, z: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """(N,) permutation `p` with ``z[p] == z_ref``: each element's atoms matched to those of the reference.

    `z_ref`, `z` (N,) atomic numbers with the same multiset; `pos_ref`, `pos` (N, 3) in Å. Within an element,
    atoms are matched by the least total squared distance between the centred geometries (Hungarian
    assignment); an unchanged order is kept as it is. Positions stay with their atoms, so each structure is
    unchanged as a geometry whatever the match.
    """
    if np.array_equal(z_ref, z):
        return np.arange(len(z))
    centred_ref, centred = pos_ref - pos_ref.mean(axis=0), pos - pos.mean(axis=0)
    order = np.empty(len(z), dtype=np.int64)
    for element in np.unique(z_ref):
        slots, atoms = np.flatnonzero(z_ref == element), np.flatnonzero(z == element)
        cost = ((centred_ref[slots, None, :] - centred[None, atoms, :]) ** 2).sum(axis=-1)
        rows, cols = linear_sum_assignment(cost)
        order[slots[rows]] = atoms[cols]
    return order
