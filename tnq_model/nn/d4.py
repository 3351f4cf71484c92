"""DFT-D4 dispersion energy of molecules from their atomic charges (tad-dftd4, differentiable)."""

from typing import Dict, List, Optional, Tuple

import torch
from torch import Tensor, nn

from .errors import ModelInputError
from .zbl import BOHR_RADIUS

#: Hartree energy in eV (CODATA 2018, NIST; the value tnq_data.units converts SPICE's hartree with).
HARTREE_IN_EV = 27.211386245988
#: The functional whose D4 damping parameters the term uses unless told otherwise: SPICE's ωB97M.
DEFAULT_FUNCTIONAL = "wb97m"
#: Charges fed to D4 are kept this far (in e) above -Z_eff (``D4Dispersion`` says why).
CHARGE_FLOOR = 0.01
#: Molecules are padded in groups of similar size; a group takes molecules of up to this factor times the atoms of
#: its smallest (``size_groups``).
GROUP_GROWTH = 1.2
#: What to run when tad-dftd4 is missing.
D4_EXTRA = "pip install 'tnq[d4]'"


def import_tad_dftd4():
    """The tad_dftd4 module, or a ModelInputError naming the extra that installs it."""
    try:
        import tad_dftd4
    except ImportError:
        raise ModelInputError(
            f"physics term 'd4' needs tad-dftd4, which is not installed: run {D4_EXTRA} in an environment with numpy<2"
        ) from None
    return tad_dftd4


def damping_parameters(functional: str) -> Dict[str, float]:
    """Rational (Becke-Johnson) damping parameters s6, s8, s9, a1, a2 and alp of ``functional`` for D4 with the
    three-body ATM term ("bj-eeq-atm"), from tad-dftd4's copy of dftd4's parameter table (s6 and s9 are 1
    unless the table says otherwise; a2 in bohr, the others without unit)."""
    tad_dftd4 = import_tad_dftd4()
    try:
        table = tad_dftd4.get_params(method="d4", functional=functional.casefold())
    except KeyError:
        raise ModelInputError(
            f"D4 has no damping parameters for `functional` {functional!r}; use a name of dftd4's table such as "
            f"{DEFAULT_FUNCTIONAL!r}, 'pbe0' or 'b3lyp'"
        ) from None
    parameters = {"s6": 1.0, "s9": 1.0, "alp": 16.0}
    parameters.update({name: float(value) for name, value in table.items()})
    return parameters


def molecule_slots(batch: Tensor, num_molecules: int) -> Tuple[Tensor, int]:
    """Slot (N,) of each atom in its molecule's padded row (atoms of a molecule keep their input order) and the
    row width, the size of the largest molecule."""
    counts = torch.bincount(batch, minlength=num_molecules)
    order = torch.argsort(batch, stable=True)
    starts = torch.cumsum(counts, 0) - counts
    slots = torch.empty_like(batch)
    slots[order] = torch.arange(batch.shape[0], device=batch.device) - starts.index_select(0, batch[order])
    return slots, int(counts.max())


def size_groups(counts: Tensor, growth: float = GROUP_GROWTH) -> List[Tensor]:
    """Molecule indices in groups of similar size: molecules sorted by atom count (``counts`` (B,)), a new group
    starting at the first one with more than ``growth`` times the atoms of the group's smallest. Each group is
    padded only to its own largest molecule, which keeps D4's O(n^3) three-body work near the unpadded cost
    (half the D4 time of a single padded block on 32 drug-like molecules of 20-39 atoms)."""
    order = torch.argsort(counts, stable=True)
    sizes = counts.index_select(0, order).tolist()
    groups: List[Tensor] = []
    start = 0
    for index, size in enumerate(sizes):
        if size > growth * sizes[start]:
            groups.append(order[start:index])
            start = index
    groups.append(order[start:])
    return groups


class D4Dispersion(nn.Module):
    """DFT-D4 dispersion energy per molecule in eV (Caldeweyher et al., J. Chem. Phys. 150, 154122 (2019)):
    two-body C6/C8 terms with rational damping plus the three-body ATM term, all pairs and triples of each
    molecule (dftd4's default real-space cutoffs: 60 bohr for pairs, 40 for triples), computed by tad-dftd4.

    The C6 coefficients depend on the atomic charges through D4's charge scaling. The model feeds it its
    learned charges; without them (``charges=None``) D4's own EEQ charges of the total charge are used, as the
    reference dftd4 library does. Energies are differentiable with respect to positions and charges.

    The damping parameters are the fixed ones of ``functional``, not learned: s6 = 1 keeps the exact C6/r^6
    limit at long range, which is what this term adds beyond the network's cutoff, and at shorter range the
    network corrects whatever the parameters miss. Charges below -Z_eff + ``CHARGE_FLOOR`` (an atom with more
    than Z_eff extra electrons, e.g. H below -0.99 e) are raised to that bound: D4's charge scaling is
    constant there already, and tad-dftd4's charge gradient is NaN at -Z_eff.

    Args:
        functional: name in dftd4's table of damping parameters (case-insensitive); the default, ωB97M, is
            the functional of SPICE.
    """

    def __init__(self, functional: str = DEFAULT_FUNCTIONAL) -> None:
        super().__init__()
        self.functional = functional
        self.damping = damping_parameters(functional)

    def forward(
        self, z: Tensor, pos: Tensor, batch: Tensor, total_charge: Tensor, charges: Optional[Tensor] = None
    ) -> Tensor:
        """Energies (B,) in eV in the dtype of ``pos``, B = ``total_charge.shape[0]``.

        z (N,) atomic numbers, pos (N, 3) in Å, batch (N,) molecule of each atom, total_charge (B,) in e,
        charges (N,) in e (None: EEQ charges of ``total_charge``). Atoms may come in any order.
        """
        tad_dftd4 = import_tad_dftd4()
        num_molecules = total_charge.shape[0]
        if charges is not None and charges.shape != z.shape:
            raise ModelInputError(
                f"D4Dispersion got `charges` of shape {list(charges.shape)}; expected ({z.shape[0]},), one per atom"
            )
        # Pad the flat batch into (B, n_max) rows; atomic number 0 marks padding for tad-dftd4. Each molecule's
        # atoms fill the first slots of its row, so a group of rows is cut to its own largest molecule.
        slots, width = molecule_slots(batch, num_molecules)
        where = (batch, slots)
        numbers = z.new_zeros(num_molecules, width).index_put(where, z)
        positions = pos.new_zeros(num_molecules, width, 3).index_put(where, pos / BOHR_RADIUS)
        padded_charges = None
        if charges is not None:
            floor = CHARGE_FLOOR - tad_dftd4.data.ZEFF(device=z.device, dtype=pos.dtype).index_select(0, z)
            padded_charges = pos.new_zeros(num_molecules, width).index_put(where, torch.maximum(charges.to(pos.dtype), floor))
        parameters = {name: pos.new_tensor(value) for name, value in self.damping.items()}
        counts = torch.bincount(batch, minlength=num_molecules)
        energies = pos.new_zeros(num_molecules)
        for rows in size_groups(counts):
            cut = int(counts[rows[-1]])
            if cut == 0:
                continue
            group_charges = None if padded_charges is None else padded_charges[rows, :cut]
            atom_energies = tad_dftd4.dftd4(
                numbers[rows, :cut], positions[rows, :cut],
                # (G, 1): tad-multicharge reads a (1,) charge as one unbatched system, (G, 1) as G rows.
                total_charge.index_select(0, rows).to(pos.dtype).unsqueeze(-1), parameters, q=group_charges,
            )
            energies = energies.index_put((rows,), atom_energies.sum(-1))
        return energies * HARTREE_IN_EV
