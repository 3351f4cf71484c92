"""Predictions of a trained potential on one split of a store, and their errors by total charge and multiplicity.

Energy errors are per conformer in meV (and meV/atom: the error divided by the atom count); force errors are
over Cartesian components in meV/Å. Stores without forces give energy errors only. A run's splits are molecule
indices of the store version it trained on; on another version they are mapped by molecule identity (source
id and SMILES), never by index.
"""

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from tnq_core.errors import TnqError
from tnq_core.progress import SILENT, Reporter
from tnq_data.store import open_store
from tnq_data.store.reader import Store

from .checkpoint import load_potential, read_checkpoint
from .config import TrainConfig
from .data import StoreBatches, to_device, usable_conformers
from .dipole import molecular_dipole
from .potential import Potential
from .splits import SPLITS, conformer_mask, load_splits
from .trainer import ForceModel


@dataclass
class Predictions:
    """Per-conformer (C,) energies in eV with their state, and per-atom (A, 3) forces in eV/Å (None without)."""

    energy_true: np.ndarray
    energy_pred: np.ndarray
    n_atoms: np.ndarray
    total_charge: np.ndarray
    multiplicity: np.ndarray
    force_true: np.ndarray | None
    force_pred: np.ndarray | None
    #: Learned charges (A,) e against the run's `charge_target` (NaN where absent); None without either.
    charge_true: np.ndarray | None = None
    charge_pred: np.ndarray | None = None
    #: Dipoles of the learned charges (C, 3) e·Å against the store's `dipole` (NaN where absent); None without.
    dipole_true: np.ndarray | None = None
    dipole_pred: np.ndarray | None = None
    #: Each physical term's energy (C,) eV, part of `energy_pred` (model.physics; empty without terms).
    terms: dict[str, np.ndarray] = field(default_factory=dict)


def predict(potential: Potential, batches: StoreBatches, device: torch.device) -> Predictions:
    """Energies (and forces when `batches` serves them) predicted for every conformer of `batches`; with learned
    charges, also the charges and dipoles where `batches` serves a `charge_target` or `dipole` target."""
    dtype = next(potential.parameters()).dtype
    model = ForceModel(potential, batches.forces).eval()
    term_names = potential.model.terms.energy_terms
    columns: dict[str, list[np.ndarray]] = {}
    for raw in batches:
        batch = to_device(raw, device, dtype)
        energy, forces, parts = model(batch)
        charges = parts.get("charges")
        for name in term_names:
            columns.setdefault(f"term_{name}", []).append(parts[name].detach().cpu().double().numpy())
        if forces is not None:
            columns.setdefault("force_pred", []).append(forces.detach().cpu().double().numpy())
            columns.setdefault("force_true", []).append(raw["forces"].double().numpy())
        if charges is not None and "charge_target" in raw:
            columns.setdefault("charge_pred", []).append(charges.detach().cpu().double().numpy())
            columns.setdefault("charge_true", []).append(raw["charge_target"].double().numpy())
        if charges is not None and "dipole" in raw:
            dipole = molecular_dipole(charges.detach(), batch["pos"], batch["z"], batch["batch"], len(energy))
            columns.setdefault("dipole_pred", []).append(dipole.cpu().double().numpy())
            columns.setdefault("dipole_true", []).append(raw["dipole"].double().numpy())
        columns.setdefault("energy_pred", []).append(energy.detach().cpu().double().numpy())
        for name in ("energy", "n_atoms", "total_charge", "multiplicity"):
            columns.setdefault(name, []).append(raw[name].numpy())
    if "energy" not in columns:
        raise TnqError(f"no conformers to evaluate in {batches.store.root}; is the split empty?")
    joined = {name: np.concatenate(parts) for name, parts in columns.items()}
    return Predictions(joined["energy"], joined["energy_pred"], joined["n_atoms"], joined["total_charge"],
                       joined["multiplicity"], joined.get("force_true"), joined.get("force_pred"),
                       *(joined.get(name) for name in ("charge_true", "charge_pred", "dipole_true", "dipole_pred")),
                       {name: joined[f"term_{name}"] for name in term_names})


def error_metrics(pred: Predictions, conformers: np.ndarray) -> dict[str, float]:
    """Energy and force MAE/RMSE (meV, meV/atom, meV/Å) over the conformers where `conformers` (C,) is True; the
    learned charges' and dipoles' MAE (e, e·Å) and each physical term's mean energy (eV) where a model has them."""
    error = 1000.0 * (pred.energy_pred - pred.energy_true)[conformers]
    per_atom = error / pred.n_atoms[conformers]
    metrics = {"energy_mae_meV": float(np.abs(error).mean()), "energy_rmse_meV": float(np.sqrt((error**2).mean())),
               "energy_mae_meV_per_atom": float(np.abs(per_atom).mean()),
               "energy_rmse_meV_per_atom": float(np.sqrt((per_atom**2).mean())), "n_conformers": int(conformers.sum())}
    if pred.force_true is not None:
        atoms = np.repeat(conformers, pred.n_atoms)
        force_error = 1000.0 * (pred.force_pred - pred.force_true)[atoms]
        metrics["force_mae_meV_per_A"] = float(np.abs(force_error).mean())
        metrics["force_rmse_meV_per_A"] = float(np.sqrt((force_error**2).mean()))
    if pred.charge_true is not None:
        metrics["charge_mae_e"] = _finite_mae(pred.charge_pred, pred.charge_true, np.repeat(conformers, pred.n_atoms))
    if pred.dipole_true is not None:
        metrics["dipole_mae_eA"] = _finite_mae(pred.dipole_pred, pred.dipole_true, conformers)
    if pred.terms:
        metrics["terms_mean_eV"] = {name: float(energy[conformers].mean()) for name, energy in pred.terms.items()}
    return metrics


def _finite_mae(pred: np.ndarray, true: np.ndarray, rows: np.ndarray) -> float:
    """Mean |pred - true| over the finite values of `true` in `rows` (NaN where there are none)."""
    error = np.abs(pred[rows] - true[rows])
    finite = np.isfinite(error)
    return float(error[finite].mean()) if finite.any() else float("nan")


def error_report(pred: Predictions) -> dict[str, dict]:
    """Metrics overall, by total charge, by multiplicity (keys are the values as strings) and by state, the
    (total charge, multiplicity) pair (keys "Q,M", e.g. "-1,2")."""
    def grouped(values: np.ndarray) -> dict[str, dict]:
        return {str(int(v)): error_metrics(pred, values == v) for v in np.unique(values)}

    pairs = np.unique(np.stack([pred.total_charge, pred.multiplicity], axis=1).astype(np.int64), axis=0)
    by_state = {f"{q},{m}": error_metrics(pred, (pred.total_charge == q) & (pred.multiplicity == m))
                for q, m in pairs.tolist()}
    return {"overall": error_metrics(pred, np.ones(len(pred.energy_true), bool)),
            "by_total_charge": grouped(pred.total_charge), "by_multiplicity": grouped(pred.multiplicity),
            "by_state": by_state}


def split_batches(store: Store, config: TrainConfig, split: str, forces: bool, splits: dict[str, np.ndarray]) -> StoreBatches:
    """Unshuffled batches of `split` of the opened store version, with the columns the run trained on, and the
    charge target and `dipole` column (where the store has them) for a model with learned charges."""
    if len(splits[split]) and splits[split].max() >= store.n_molecules:
        raise TnqError(f"{store.root} has {store.n_molecules} molecules but the run's {split} split refers to "
                       f"molecule {splits[split].max()}; evaluate on the store the run was trained on")
    selected = conformer_mask(store.column("molecule"), splits[split])
    selected &= usable_conformers(store, config.partial_charges, config.target)
    learns_charges = "charges" in config.model.physics
    charge_target = config.charge_target if learns_charges and config.charge_target in store.columns else None
    return StoreBatches(store, selected, config.batch_size, target=config.target,
                        partial_charges=config.partial_charges, forces=forces, charge_target=charge_target,
                        dipole=learns_charges and "dipole" in store.columns, shuffle=False)


def molecule_identities(store: Store) -> np.ndarray:
    """(M,) str: each molecule's identity, its source id and SMILES (separated by the unit separator)."""
    source_id, smiles = store.column("source_id").astype(str), store.column("smiles").astype(str)
    return np.char.add(np.char.add(source_id, "\x1f"), smiles)


def splits_by_identity(trained: Store, other: Store,
                       splits: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """The run's `splits` (molecule indices of the `trained` version) as molecule indices of `other`.

    A molecule of `other` joins the split of the trained molecule with its source id and SMILES, and no split
    when there is none. Returns the mapped splits and, per split, how many of the run's molecules were found.
    """
    known, wanted = molecule_identities(trained), molecule_identities(other)
    split_of = np.full(trained.n_molecules, -1)
    for k, name in enumerate(SPLITS):
        split_of[splits[name]] = k
    unique, first, inverse = np.unique(known, return_index=True, return_inverse=True)
    label = split_of[first]
    if (clash := np.flatnonzero(label[inverse] != split_of)).size:
        j = int(clash[0])
        source_id, smiles = known[j].split("\x1f")
        raise TnqError(f"{trained.root} holds molecule {source_id!r} ({smiles!r}) in two of the run's splits; its "
                       "splits cannot be mapped by molecule identity, evaluate on the store the run was trained on")
    where = np.minimum(np.searchsorted(unique, wanted), len(unique) - 1)
    mapped = np.where(unique[where] == wanted, label[where], -1)
    present = np.isin(known, wanted)
    return ({name: np.flatnonzero(mapped == k).astype(np.int64) for k, name in enumerate(SPLITS)},
            {name: int(present[splits[name]].sum()) for name in SPLITS})


def _trained_version(paths: list[Path], version: str) -> Store:
    """The trained-on `version` from the first of `paths` that holds it (for the identities of its molecules)."""
    for path in paths:
        try:
            return open_store(path, version)
        except TnqError:
            continue
    raise TnqError(f"cannot map the run's splits by molecule identity: none of {', '.join(map(str, paths))} holds "
                   f"version {version}, the one it trained on (a run records molecule indices of that version); "
                   "make its training store readable again")


def _other_version(run_dir: Path, store_path: Path, config: TrainConfig, trained_on: str, split: str,
                   splits: dict[str, np.ndarray], reporter: Reporter) -> tuple[Store, dict[str, np.ndarray], dict]:
    """STORE at its HEAD, the run's splits mapped onto it by identity, and what the mapping found."""
    store = open_store(store_path)
    missing = [name for name in [config.target, *config.partial_charges] if name not in store.columns]
    if missing:
        raise TnqError(f"{store_path} (version {store.version}) has no column {missing[0]!r}, which the run in "
                       f"{run_dir} was trained with; evaluate on a store that has it")
    trained = _trained_version([Path(store_path), Path(config.store)], trained_on)
    mapped, found = splits_by_identity(trained, store, splits)
    if not len(mapped[split]):
        raise TnqError(f"none of the {len(splits[split])} molecules of the run's {split} split is in {store_path} "
                       f"(version {store.version}; matched by source id and SMILES); nothing to evaluate")
    mapping = {"by": "source_id and smiles", "run_molecules": len(splits[split]), "found": found[split],
               "molecules": len(mapped[split])}
    reporter.note(f"{store_path} is at version {store.version}, not {trained_on} the run trained on (`force`): "
                  f"found {found[split]} of the run's {len(splits[split])} {split} molecules by source id and "
                  f"SMILES, {len(mapped[split])} molecules evaluated")
    return store, mapped, mapping


def evaluate_run(run_dir: Path, store_path: Path, split: str = "test", checkpoint: str = "best.pt",
                 device: str = "cpu", force: bool = False, reporter: Reporter = SILENT) -> dict:
    """The error report of the run's `checkpoint` on `split` of the store version the run was trained on.

    The store at `store_path` is opened once, at that version (whatever its HEAD is now), so the metrics
    and the version they name always agree; a store that does not hold it is an error. With `force`, the
    store's HEAD is evaluated whatever its version, with the run's splits mapped by molecule identity
    (`splits_by_identity`; the report's ``split_mapping`` says how many molecules were found).
    """
    if split not in SPLITS:
        raise TnqError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    run_dir = Path(run_dir)
    extra = read_checkpoint(run_dir / checkpoint)["extra"]
    if "config" not in extra:
        raise TnqError(f"{run_dir / checkpoint} was not trained by tnq (source: {extra.get('source', 'unknown')}): it has "
                       "no training config, store or splits to evaluate; use tnq_model.load or the ASE calculator")
    config = TrainConfig.model_validate(extra["config"])
    trained_on = extra["store_version"]
    splits, mapping = load_splits(run_dir / "splits.npz"), None
    if force and open_store(store_path).version != trained_on:
        store, splits, mapping = _other_version(run_dir, store_path, config, trained_on, split, splits, reporter)
    else:
        try:
            store = open_store(store_path, trained_on)
        except TnqError as err:
            raise TnqError(f"{run_dir} was trained on version {trained_on}, which {store_path} does not hold "
                           f"({err}); evaluate on the store the run was trained on, or pass `force` to evaluate "
                           "this one with the run's splits mapped by molecule identity") from None
    forces = extra["forces"] and "forces" in store.columns
    batches = split_batches(store, config, split, forces, splits)
    report = error_report(predict(load_potential(run_dir / checkpoint, device), batches, torch.device(device)))
    return {**report, "store_version": store.version, "trained_on_store_version": trained_on,
            "split": split, "checkpoint": checkpoint, **({"split_mapping": mapping} if mapping else {})}


def write_report(report: dict, path: Path) -> None:
    """Save an error report as indented JSON."""
    Path(path).write_text(json.dumps(report, indent=2) + "\n")
