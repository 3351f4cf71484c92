"""What a run trains on: the store version, the splits and their usable conformers, and a new Potential with
references and loss scales fitted on the training split."""

from dataclasses import dataclass

import numpy as np
import torch

from tnq_core.errors import TnqError
from tnq_data.store import open_store
from tnq_data.store.reader import Store

from .config import SplitConfig, TrainConfig
from .data import finite_conformers
from .loss import LossScales
from .nn.tensornet import TensorNet
from .potential import Potential
from .references import Compositions, compositions, fit_compositions, merge_compositions
from .splits import (conformer_mask, cover_training, molecule_state_pairs, molecule_states, split_molecules,
                     spread_states, store_molecule_elements)
from .term_estimates import estimated_term_energies, estimates_any


@dataclass
class Setup:
    """What a run trains on: the store, the selection of each split and whether forces are used."""

    store: Store
    splits: dict[str, np.ndarray]
    selected: dict[str, np.ndarray]
    forces: bool


def new_splits(store: Store, split: SplitConfig) -> dict[str, np.ndarray]:
    """Molecule indices of each split drawn from `split`: every (total charge, multiplicity) state that three
    molecules have in val and test, and every element, total charge and multiplicity in train."""
    molecule = store.column("molecule")
    splits = split_molecules(store.n_molecules, split.model_dump(exclude={"seed"}), split.seed)
    elements = store_molecule_elements(store)
    charge, multiplicity = store.column("total_charge"), store.column("multiplicity")
    pairs = molecule_state_pairs(charge, multiplicity, molecule)
    labels = [e | s for e, s in zip(elements, molecule_states(pairs))]
    splits = cover_training(splits, labels)  # first, so that spreading never picks a molecule train needs
    return spread_states(splits, pairs, labels)


def prepare_data(config: TrainConfig, splits: dict[str, np.ndarray] | None) -> Setup:
    """Open the store and select the usable conformers of each split (new splits from the config when None)."""
    store = open_store(config.store)
    for name in [config.target, *config.partial_charges]:
        if name not in store.columns:
            raise TnqError(f"{config.store} has no column {name!r} (version {store.version}); choose another "
                           "target or state, or add the column (tnq-data charges)")
    if config.charge_target is not None and config.charge_target not in store.columns:
        raise TnqError(f"{config.store} has no column {config.charge_target!r} for `charge_target` (version "
                       f"{store.version}); add it (tnq-data charges) or choose one of "
                       f"{[c for c in store.columns if c.startswith('charges/')] or 'the charges columns'}")
    if config.supervises_dipole and "dipole" not in store.columns:
        raise TnqError(f"{config.store} has no `dipole` column (version {store.version}) for loss.dipole_weight; "
                       "curate a source that has dipoles (curate spice) or set loss.dipole_weight to 0")
    molecule = store.column("molecule")
    if splits is None:
        splits = new_splits(store, config.split)
    finite = finite_conformers(store, config.partial_charges, config.target)
    usable = np.logical_and.reduce(list(finite.values()))
    selected = {name: conformer_mask(molecule, ids) & usable for name, ids in splits.items()}
    if not selected["train"].any():
        raise TnqError(_empty_training_split(config, finite, conformer_mask(molecule, splits["train"])))
    return Setup(store, splits, selected, "forces" in store.columns)


def _empty_training_split(config: TrainConfig, finite: dict[str, np.ndarray], train: np.ndarray) -> str:
    """Why no training conformer is usable: the columns with NaN on its conformers, or too few molecules."""
    n = int(train.sum())
    nan = [f"`{name}` is NaN on {n - int(ok[train].sum())} of its {n} conformers" for name, ok in finite.items()
           if n and not ok[train].all()]
    if not nan:
        return (f"the training split of {config.store} is empty; lower the val/test fractions or use more "
                "molecules")
    return (f"the training split of {config.store} has no usable conformer: {'; '.join(nan)}; for charges, run "
            "tnq-data charges again with a fallback that covers these molecules (e.g. --fallback gfn2), or take the "
            "column out of `state`")


def build_potential(config: TrainConfig, setup: Setup) -> tuple[Potential, LossScales]:
    """A new Potential (references fitted on the training split, network scale from its forces, or from its
    residual energies without forces) and the training split's loss scales."""
    store, rows = setup.store, np.flatnonzero(setup.selected["train"])
    model_args = config.model.model_dump(exclude={"dtype"})
    model = TensorNet(**model_args, state=config.state, dtype=getattr(torch, config.model.dtype))
    atoms = _read_training_atoms(config, setup, model)
    # References are fitted to the energy without the physical terms' (estimated) share.
    energy = store.column(config.target)[rows].astype(np.float64) - atoms.term_energy
    refs = fit_compositions(atoms.groups, energy, config.model.max_z, config.references)
    residual = energy - refs.group_energy(atoms.groups)[atoms.groups.group]
    energy_scale = float(np.sqrt(np.mean((residual / atoms.groups.n_atoms) ** 2)))
    spread = atoms.forces.scale() if setup.forces else float(np.std(residual))
    potential = Potential(model, refs.atom_refs, refs.charges, scale=spread if spread > 0 else 1.0, shift=0.0,
                          charge_offsets=refs.charge_offsets, ref_multiplicities=refs.multiplicities,
                          multiplicity_offsets=refs.multiplicity_offsets)
    dipole = _MeanSquare()
    if config.supervises_dipole:
        dipole.add(store.column("dipole")[rows], finite_only=True)
    return potential, LossScales(energy_scale if energy_scale > 0 else 1.0, atoms.forces.scale(),
                                 atoms.charges.scale(), dipole.scale())


class _MeanSquare:
    """A mean of squares accumulated chunk by chunk in float64, and the root of it as a scale."""

    def __init__(self) -> None:
        self.total, self.count = 0.0, 0

    def add(self, values: np.ndarray, finite_only: bool = False) -> None:
        values = (values[np.isfinite(values)] if finite_only else values).astype(np.float64).ravel()
        self.total += float(values @ values)
        self.count += values.size

    def scale(self) -> float:
        """The root mean square; 1 when nothing was added or it is 0 or NaN (a scale to divide by)."""
        rms = float(np.sqrt(self.total / self.count)) if self.count else 0.0
        return rms if rms > 0 else 1.0


@dataclass
class _TrainingAtoms:
    """What setup needs of the training conformers' atoms: their compositions (the fit's rows), the physical
    terms' estimated energies (C,) eV, and the mean squares of their forces and charge target."""

    groups: Compositions
    term_energy: np.ndarray
    forces: _MeanSquare
    charges: _MeanSquare


def _read_training_atoms(config: TrainConfig, setup: Setup, model: TensorNet) -> _TrainingAtoms:
    """One pass over the store, a shard at a time, over the atoms of the training conformers (store order);
    positions are read only when a physical term is estimated (term_estimates.py)."""
    train, estimate = setup.selected["train"], estimates_any(model.terms)
    optional = {"forces": setup.forces, config.charge_target: config.charge_target is not None, "pos": estimate}
    columns = ["z"] + [name for name, wanted in optional.items() if wanted]
    total_charge, multiplicity = setup.store.column("total_charge"), setup.store.column("multiplicity")
    parts, terms, forces, charges = [], [], _MeanSquare(), _MeanSquare()
    for shard in setup.store.iter_shards(columns):
        mask = train[shard.first_conformer:shard.first_conformer + shard.n_conformers]
        keep = np.flatnonzero(mask) + shard.first_conformer
        sizes = np.diff(shard.arrays["atom_offset"])
        offsets = np.concatenate([[0], np.cumsum(sizes[mask])])
        atoms = np.repeat(mask, sizes)
        z = shard.arrays["z"][atoms]
        parts.append(compositions(z, offsets, total_charge[keep], multiplicity[keep]))
        if estimate:
            terms.append(estimated_term_energies(model.terms, z, _select_rows(shard.arrays["pos"], atoms), offsets,
                                                 total_charge[keep]))
        if setup.forces:
            forces.add(_select_rows(shard.arrays["forces"], atoms))
        if config.charge_target is not None:
            charges.add(shard.arrays[config.charge_target][atoms], finite_only=True)
    groups = merge_compositions(parts)
    term_energy = np.concatenate(terms) if estimate else np.zeros(len(groups.group))
    return _TrainingAtoms(groups, term_energy, forces, charges)


def _select_rows(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """values[mask] of an (N, ...) array, `mask` (N,) bool, each row copied as one opaque item (numpy's boolean
    indexing of (N, 3) float32 rows is about 10x slower)."""
    values = np.ascontiguousarray(values)
    row = np.dtype((np.void, values.itemsize * int(np.prod(values.shape[1:]))))
    return values.view(row).reshape(len(values))[mask].view(values.dtype).reshape(-1, *values.shape[1:])
