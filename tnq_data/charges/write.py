"""The result of a charges run as one new store version: the atom and molecule columns and the failures table."""

from pathlib import Path

import numpy as np

from tnq_core.errors import TnqError
from tnq_data.charges.base import Scheme
from tnq_data.charges.load import StoredMolecule, level_columns
from tnq_data.store import Column, add_columns


def write_charges(root: Path, opened: "tnq_data.store.Store", molecules: list[StoredMolecule],  # noqa: F821
                  scheme: str, chain: list[Scheme], per_conformer: bool, timeout: float | None) -> str:
    """Add the columns and the failures table as one new version; return its id.

    Raises `TnqError` (and writes nothing) if molecules labelled with one scheme would carry two levels of theory.
    """
    check_levels(molecules, scheme)
    charges = np.full(opened.n_atoms, np.nan, dtype=np.float32)
    rows = []
    for molecule in molecules:
        if molecule.charges is not None:
            n = len(molecule.z)
            for start, q in zip(molecule.atom_starts, molecule.charges):
                charges[start:start + n] = q
        rows += [{"molecule": molecule.index, "source_id": molecule.source_id, **failure,
                  "used": molecule.scheme} for failure in molecule.failures]
    method, basis = level_columns(f"charges/{scheme}")
    parameters = {"scheme": scheme, "fallback": [s.name for s in chain[1:]], "per_conformer": per_conformer,
                  "timeout": timeout, "versions": {s.name: s.version for s in chain},
                  "params": {s.name: s.params for s in chain if s.params}}
    return add_columns(root, {f"charges/{scheme}": Column("atom", charges, unit="e"),
                              f"charges_scheme/{scheme}": Column("molecule", _strings(m.scheme for m in molecules)),
                              method: Column("molecule", _strings(m.level[0] for m in molecules)),
                              basis: Column("molecule", _strings(m.level[1] for m in molecules))},
                       provenance={"command": "tnq-data charges", "parameters": parameters, "inputs": []},
                       tables={f"charges/{scheme}/failures": rows})


def check_levels(molecules: list[StoredMolecule], scheme: str) -> None:
    """Refuse a column in which the molecules labelled with one scheme have different levels of theory."""
    levels: dict[str, set[tuple[str, str]]] = {}
    for molecule in molecules:
        if molecule.scheme:
            levels.setdefault(molecule.scheme, set()).add(molecule.level)
    for name, found in sorted(levels.items()):
        if len(found) > 1:
            shown = " and ".join("/".join(part for part in level if part) or "unrecorded" for level in sorted(found))
            raise TnqError(f"`charges/{scheme}` would hold scheme {name} at {len(found)} levels of theory ({shown}); "
                           "nothing was written; give each level its own store, or compute all at one level "
                           "(mbis: `compute` with `method` and `basis`)")


def _strings(values) -> np.ndarray:
    return np.array(list(values), dtype=object)
