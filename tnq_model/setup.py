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
from .references import fit_references
from .splits import (conformer_mask, cover_training, molecule_elements, molecule_state_pairs, molecule_states,
                     split_molecules, spread_states)
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
    elements = molecule_elements(store.column("z"), store.column("atom_offset"), molecule)
    charge, multiplicity = store.column("total_charge"), store.column("multiplicity")
    labels = [e | s for e, s in zip(elements, molecule_states(charge, multiplicity, molecule))]
    splits = cover_training(splits, labels)  # first, so that spreading never picks a molecule train needs
    return spread_states(splits, molecule_state_pairs(charge, multiplicity, molecule), labels)


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
    store, train = setup.store, setup.selected["train"]
    offsets, z = store.column("atom_offset"), store.column("z")
    rows = np.flatnonzero(train)
    atom_rows = np.repeat(train, np.diff(offsets))
    n_atoms = np.diff(offsets)[rows]
    sub_offsets = np.concatenate([[0], np.cumsum(n_atoms)])
    charge, multiplicity = store.column("total_charge")[rows], store.column("multiplicity")[rows]
    model_args = config.model.model_dump(exclude={"dtype"})
    model = TensorNet(**model_args, state=config.state, dtype=getattr(torch, config.model.dtype))
    # References are fitted to the energy without the physical terms' (estimated) share.
    energy = store.column(config.target)[rows].astype(np.float64) - _term_energies(
        model, store, atom_rows, z[atom_rows], sub_offsets, charge)
    refs = fit_references(z[atom_rows], sub_offsets, energy, config.model.max_z, config.references, charge,
                          multiplicity)
    residual = energy - refs.energy(z[atom_rows], sub_offsets, charge, multiplicity)
    energy_scale = float(np.sqrt(np.mean((residual / n_atoms) ** 2)))
    force_scale = float(np.sqrt(np.mean(store.column("forces")[atom_rows].astype(np.float64) ** 2))) \
        if setup.forces else 1.0
    spread = force_scale if setup.forces else float(np.std(residual))
    potential = Potential(model, refs.atom_refs, refs.charges, scale=spread if spread > 0 else 1.0, shift=0.0,
                          charge_offsets=refs.charge_offsets, ref_multiplicities=refs.multiplicities,
                          multiplicity_offsets=refs.multiplicity_offsets)
    charge_scale = _rms(store.column(config.charge_target)[atom_rows]) if config.charge_target else 1.0
    dipole_scale = _rms(store.column("dipole")[rows]) if config.supervises_dipole else 1.0
    return potential, LossScales(energy_scale if energy_scale > 0 else 1.0, force_scale if force_scale > 0 else 1.0,
                                 charge_scale, dipole_scale)


def _term_energies(model: TensorNet, store: Store, atom_rows: np.ndarray, z: np.ndarray, offsets: np.ndarray,
                   charge: np.ndarray) -> np.ndarray:
    """(C,) eV: the physical terms' energies of the training conformers, estimated before training (zeros
    without an estimated term, and then no positions are read; term_estimates.py)."""
    if not estimates_any(model.terms):
        return np.zeros(len(charge))
    return estimated_term_energies(model.terms, z, store.column("pos")[atom_rows], offsets, charge)


def _rms(values: np.ndarray) -> float:
    """Root mean square of the finite `values`; 1 when there are none or it is 0 (a scale to divide by)."""
    finite = values[np.isfinite(values)].astype(np.float64)
    rms = float(np.sqrt(np.mean(finite**2))) if finite.size else 0.0
    return rms if rms > 0 else 1.0
