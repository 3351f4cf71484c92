"""What a run trains on: the store version, the splits and their usable conformers, and a new Potential with
references and loss scales fitted on the training split."""

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch

from tnq_core.errors import TnqError
from tnq_core.ragged import index_dtype
from tnq_data.store import open_store
from tnq_data.store.compositions import check_composition_column
from tnq_data.store.reader import Shard, Store

from .config import SplitConfig, TrainConfig
from .data import finite_conformers
from .loss import LossScales
from .nn.tensornet import TensorNet
from .potential import Potential
from .references import Compositions, compositions, fit_compositions, merge_compositions
from .setup_cache import Fit, SetupCache, default_directory, fit_key, splits_key
from .splits import (
    conformer_mask,
    cover_training,
    molecule_labels,
    molecule_states,
    split_molecules,
    spread_states,
)
from .term_estimates import estimated_term_energies, estimates_any

#: Training atoms whose forces and charge target set their loss scales: shards are read in `spread_order`
#: until this many were seen (every shard of a smaller store). A scale only normalises a loss term, so an
#: estimate from a few whole shards spread over the store serves, and reading every force of a large store
#: would dominate the time to first batch.
SCALE_ATOMS = 1 << 22


@dataclass
class Setup:
    """What a run trains on: the store, the selection of each split and whether forces are used; the fit when
    it came from the setup cache, and the cache and key to keep a new fit under."""

    store: Store
    splits: dict[str, np.ndarray]
    selected: dict[str, np.ndarray]
    forces: bool
    cache: SetupCache
    fit: Fit | None = None
    fit_key: str = ""

    @cached_property
    def groups(self) -> Compositions:
        """Every conformer's row of the reference fit (`store_compositions`), read on first use."""
        return store_compositions(self.store)

    @cached_property
    def molecule(self) -> np.ndarray:
        """(C,) each conformer's molecule, from the molecules' offsets (M+1,) rather than the `molecule` column."""
        return np.repeat(np.arange(self.store.n_molecules, dtype=index_dtype(self.store.n_molecules)),
                         np.diff(self.store.column("conformer_offset")))


def store_compositions(store: Store) -> Compositions:
    """Every conformer's element counts, total charge and multiplicity, grouped (the reference fit's rows and
    the molecules' labels): one pass over z, a few shards at a time (`Store.map_shards`), counting only the
    atoms of the conformers the store's `composition` column points at (every atom of a store without it)."""
    summarised = "composition" in store.columns
    return merge_compositions(store.map_shards(
        lambda shard: compositions(shard.arrays["z"], shard.arrays["atom_offset"], shard.arrays["total_charge"],
                                   shard.arrays["multiplicity"], _composition(store, shard) if summarised else None),
        ["z", "total_charge", "multiplicity"] + ["composition"] * summarised))


def _composition(store: Store, shard: Shard) -> np.ndarray:
    """The shard's `composition` column, after the checks it allows without z (`check_composition_column`)."""
    composition = shard.arrays["composition"]
    problem = check_composition_column(composition, shard.arrays["atom_offset"])
    if problem:
        raise TnqError(f"{store.root}: the `composition` column of shard {shard.index} {problem}; the store was "
                       f"not written by tnq or is damaged: run tnq-data verify {store.root}")
    return composition


def new_splits(store: Store, split: SplitConfig, groups: Compositions, molecule: np.ndarray) -> dict[str, np.ndarray]:
    """Molecule indices of each split drawn from `split`: every (total charge, multiplicity) state that three
    molecules have in val and test, and every element, total charge and multiplicity in train; `groups` are
    the store's `store_compositions`, `molecule` (C,) each conformer's molecule."""
    splits = split_molecules(store.n_molecules, split.model_dump(exclude={"seed"}), split.seed)
    elements, states = molecule_labels(groups, molecule)
    labels = elements | molecule_states(states)
    splits = cover_training(splits, labels)  # first, so that spreading never picks a molecule train needs
    return spread_states(splits, states, labels)


def prepare_data(config: TrainConfig, splits: dict[str, np.ndarray] | None) -> Setup:
    """Open the store and select the usable conformers of each split (new splits from the config when None);
    the splits, selection and fit come from the setup cache when it holds them (`setup_cache.py`)."""
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
    cache = SetupCache(default_directory() if config.setup_cache else None)
    setup = Setup(store, {}, {}, "forces" in store.columns, cache)
    setup.splits = splits if splits is not None else _splits(setup, config.split)
    setup.fit_key = fit_key(store, setup.splits, config)
    cached = cache.fit(setup.fit_key, len(store))
    if cached is not None:
        setup.selected, setup.fit = cached
        return setup
    molecule = setup.molecule
    finite = finite_conformers(store, config.partial_charges, config.target)
    usable = np.logical_and.reduce(list(finite.values()))
    setup.selected = {name: conformer_mask(molecule, ids) & usable for name, ids in setup.splits.items()}
    if not setup.selected["train"].any():
        raise TnqError(_empty_training_split(config, finite, conformer_mask(molecule, setup.splits["train"])))
    return setup


def _splits(setup: Setup, split: SplitConfig) -> dict[str, np.ndarray]:
    """The splits drawn from `split`: from the setup cache, else `new_splits` (then kept there)."""
    key = splits_key(setup.store, split)
    splits = setup.cache.splits(key, setup.store.n_molecules)
    if splits is None:
        splits = new_splits(setup.store, split, setup.groups, setup.molecule)
        setup.cache.put_splits(key, setup.store, splits)
    return splits


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
    residual energies without forces) and the training split's loss scales; the fit from the setup cache when
    it came from there, else fitted and kept there."""
    model_args = config.model.model_dump(exclude={"dtype"})
    model = TensorNet(**model_args, state=config.state, dtype=getattr(torch, config.model.dtype))
    fit = setup.fit
    if fit is None:
        fit = _fit_training_split(config, setup, model)
        setup.cache.put_fit(setup.fit_key, setup.store, setup.selected, fit)
    refs = fit.references
    potential = Potential(model, refs.atom_refs, refs.charges, scale=fit.scale, shift=0.0,
                          charge_offsets=refs.charge_offsets, ref_multiplicities=refs.multiplicities,
                          multiplicity_offsets=refs.multiplicity_offsets)
    return potential, fit.loss


def _fit_training_split(config: TrainConfig, setup: Setup, model: TensorNet) -> Fit:
    """The references, network scale and loss scales of the training split (`model` gives the physical terms
    whose estimated energies the references leave out)."""
    store, rows = setup.store, np.flatnonzero(setup.selected["train"])
    groups = setup.groups.subset(rows)
    # References are fitted to the energy without the physical terms' (estimated) share.
    energy = np.take(store.column(config.target), rows).astype(np.float64, copy=False)
    if estimates_any(model.terms):
        energy -= _estimated_term_energies(setup, model)
    refs = fit_compositions(groups, energy, config.model.max_z, config.references)
    # in place from here (a store's millions of conformers: each new array costs as much as the arithmetic)
    residual = energy
    residual -= np.take(refs.group_energy(groups), groups.group)
    forces, charges = _training_mean_squares(config, setup)
    spread = forces.scale() if setup.forces else float(np.std(residual))
    residual /= np.take(groups.counts.sum(axis=1), groups.group)
    energy_scale = float(np.sqrt(np.mean(np.square(residual, out=residual))))
    dipole = _MeanSquare()
    if config.supervises_dipole:
        dipole.add(store.column("dipole")[rows], finite_only=True)
    return Fit(refs, spread if spread > 0 else 1.0, LossScales(energy_scale if energy_scale > 0 else 1.0,
                                                              forces.scale(), charges.scale(), dipole.scale()))


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


def _training_atoms(setup: Setup, shard: Shard) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The training conformers of `shard`: their store indices, atom offsets among their atoms (from 0) and the
    (atoms,) bool mask of their atoms among the shard's."""
    mask = setup.selected["train"][shard.first_conformer:shard.first_conformer + shard.n_conformers]
    sizes = np.diff(shard.arrays["atom_offset"])
    offsets = np.concatenate([[0], np.cumsum(sizes[mask])])
    return np.flatnonzero(mask) + shard.first_conformer, offsets, np.repeat(mask, sizes)


def _estimated_term_energies(setup: Setup, model: TensorNet) -> np.ndarray:
    """The physical terms' estimated energies (eV) of the training conformers (store order), a shard at a time
    (term_estimates.py); total charges from setup's groups, not read again."""
    groups, terms = setup.groups, []
    for shard in setup.store.iter_shards(["z", "pos"]):
        keep, offsets, atoms = _training_atoms(setup, shard)
        terms.append(estimated_term_energies(model.terms, shard.arrays["z"][atoms], _select_rows(
            shard.arrays["pos"], atoms), offsets, groups.total_charge[groups.group[keep]]))
    return np.concatenate(terms)


def _training_mean_squares(config: TrainConfig, setup: Setup,
                           enough: int = SCALE_ATOMS) -> tuple[_MeanSquare, _MeanSquare]:
    """The mean squares of the training atoms' forces (eV/Å) and finite `charge_target` values (e), over shards
    in `spread_order` until `enough` training atoms were seen (all of them in a smaller store)."""
    forces, charges = _MeanSquare(), _MeanSquare()
    columns = ["forces"] * setup.forces + [config.charge_target] * (config.charge_target is not None)
    if not columns:
        return forces, charges
    seen = 0
    for index in spread_order(setup.store.n_shards):
        shard = setup.store.shard(index, columns)
        atoms = _training_atoms(setup, shard)[2]
        if setup.forces:
            forces.add(_select_rows(shard.arrays["forces"], atoms))
        if config.charge_target is not None:
            charges.add(shard.arrays[config.charge_target][atoms], finite_only=True)
        seen += int(atoms.sum())
        if seen >= enough:
            break
    return forces, charges


def spread_order(n: int) -> list[int]:
    """0 .. n-1 ordered so that every prefix is spread evenly over the range (a store's subsets come one after
    another, so a prefix of shards samples each of them): index j's place is its bit-reversed binary fraction
    (van der Corput), scaled to n, each index kept where it first appears."""
    bits = max(n - 1, 1).bit_length()
    return list(dict.fromkeys(int(f"{j:0{bits}b}"[::-1], 2) * n >> bits for j in range(1 << bits)))


def _select_rows(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """values[mask] of an (N, ...) array, `mask` (N,) bool, each row copied as one opaque item (numpy's boolean
    indexing of (N, 3) float32 rows is about 10x slower)."""
    values = np.ascontiguousarray(values)
    row = np.dtype((np.void, values.itemsize * int(np.prod(values.shape[1:]))))
    return values.view(row).reshape(len(values))[mask].view(values.dtype).reshape(-1, *values.shape[1:])
