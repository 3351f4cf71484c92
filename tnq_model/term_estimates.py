"""The physical terms' energies estimated before training, so that the references are fitted to what the
network and the references still have to explain (docs/training.md, "References").

ZBL has no parameters, so its energy is exact. Coulomb acts on charges that are learned later: it is estimated
with each molecule's total charge spread evenly (Q/N per atom), which gives an ion its self-energy
k_e (Q/N)^2 sum_{i<j} f(r_ij), about k_e Q^2 / (2 R) for a molecule of radius R (2-4 eV for a small ion): the
part that shifts with a molecule's state and size, which references fitted without it leave to the network as
a bias per state. Target charges (e.g. AM1-BCC) are not used: their energy is dominated by bonded pairs, which
the learned charges match only roughly, and on the demo they made the ions' errors larger, not smaller
(docs/training.md, "References").
"""

import numpy as np
import torch

from .nn.physics import PhysicalTerms

#: Conformers are taken in chunks of at most this many atom pairs (bounded memory, no loop over conformers).
PAIRS_PER_CHUNK = 2_000_000


def estimates_any(terms: PhysicalTerms) -> bool:
    """Whether `terms` has a term whose energy is estimated here (ZBL or Coulomb; D4 is not)."""
    return terms.zbl is not None or terms.coulomb is not None


def estimated_term_energies(terms: PhysicalTerms, z: np.ndarray, pos: np.ndarray, atom_offset: np.ndarray,
                            total_charge: np.ndarray) -> np.ndarray:
    """(C,) float64 eV: the ZBL and Coulomb energies of `terms` that are on (zeros without them).

    z (A,), pos (A, 3) Å and atom_offset (C+1,) of the conformers given, total_charge (C,) e.
    """
    n_atoms = np.diff(atom_offset)
    energy = np.zeros(len(n_atoms))
    if not estimates_any(terms):
        return energy
    charges = np.repeat(total_charge.astype(np.float64) / n_atoms, n_atoms)
    pairs = np.cumsum(n_atoms * (n_atoms - 1) // 2)
    start = 0
    while start < len(n_atoms):
        stop = max(start + 1, int(np.searchsorted(pairs, (pairs[start - 1] if start else 0) + PAIRS_PER_CHUNK,
                                                  side="right")))
        lo, hi = atom_offset[start] - atom_offset[0], atom_offset[stop] - atom_offset[0]
        batch = torch.from_numpy(np.repeat(np.arange(stop - start), n_atoms[start:stop]))
        chunk_pos = torch.from_numpy(np.asarray(pos[lo:hi], dtype=np.float64))
        with torch.no_grad():
            if terms.zbl is not None:
                energy[start:stop] += terms.zbl(torch.from_numpy(z[lo:hi].astype(np.int64)), chunk_pos, batch).numpy()
            if terms.coulomb is not None:
                energy[start:stop] += terms.coulomb(torch.from_numpy(charges[lo:hi]), chunk_pos, batch).numpy()
        start = stop
    return energy
