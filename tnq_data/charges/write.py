"""The result of a charges run as one new store version: the atom and molecule columns and the failures table."""

from pathlib import Path

import numpy as np

from tnq_data.charges.base import Scheme
from tnq_data.charges.load import StoredMolecule
from tnq_data.store import Column, add_columns


def write_charges(root: Path, opened: "tnq_data.store.Store", molecules: list[StoredMolecule],  # noqa: F821
                  scheme: str, chain: list[Scheme], per_conformer: bool, timeout: float | None) -> str:
    """Add the columns and the failures table as one new version; return its id."""
    charges = np.full(opened.n_atoms, np.nan, dtype=np.float32)
    used = np.array([m.scheme for m in molecules], dtype=object)
    rows = []
    for molecule in molecules:
        if molecule.charges is not None:
            n = len(molecule.z)
            for start, q in zip(molecule.atom_starts, molecule.charges):
                charges[start:start + n] = q
        rows += [{"molecule": molecule.index, "source_id": molecule.source_id, **failure,
                  "used": molecule.scheme} for failure in molecule.failures]
    parameters = {"scheme": scheme, "fallback": [s.name for s in chain[1:]], "per_conformer": per_conformer,
                  "timeout": timeout, "versions": {s.name: s.version for s in chain},
                  "params": {s.name: s.params for s in chain if s.params}}
    return add_columns(root, {f"charges/{scheme}": Column("atom", charges, unit="e"),
                              f"charges_scheme/{scheme}": Column("molecule", used)},
                       provenance={"command": "tnq-data charges", "parameters": parameters, "inputs": []},
                       tables={f"charges/{scheme}/failures": rows})
