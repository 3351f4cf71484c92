"""The molecules of a store as `compute_charges` needs them: atoms, conformer labels and geometries, identity."""

from dataclasses import dataclass, field

import numpy as np

from tnq_core.errors import TnqError
from tnq_data.charges.base import ChargeFailure, Scheme
from tnq_data.charges.molecule import canonical_identity, store_mol


@dataclass
class StoredMolecule:
    """One stored molecule: its conformers' atoms and labels, canonical identity, and the outcome so far."""

    index: int
    source_id: str
    smiles: str
    z: np.ndarray                  # (N,) atomic numbers, shared by all conformers
    atom_starts: np.ndarray        # (C_m,) global index of each conformer's first atom
    total_charge: np.ndarray       # (C_m,) e
    multiplicity: np.ndarray       # (C_m,)
    positions: np.ndarray          # (C_m, N, 3) Å
    source: np.ndarray | None      # (C_m, N) charges already in the store (NaN where absent), or None
    source_level: tuple[str, str] = ("", "")          # (method, basis) of `source`, "" where not recorded
    canonical: tuple[str, np.ndarray] | None = None   # canonical SMILES and rank (N,)
    identity_error: str | None = None
    scheme: str = ""
    level: tuple[str, str] = ("", "")   # (method, basis) of `charges`
    charges: np.ndarray | None = None   # (C_m, N) e, store order
    failures: list[dict] = field(default_factory=list)


def level_columns(column: str) -> tuple[str, str]:
    """The molecule columns holding the method and basis of the charges in column ``charges/<name>``."""
    name = column.removeprefix("charges/")
    return f"charges_method/{name}", f"charges_basis/{name}"


def check_source(store: "tnq_data.store.Store", scheme: Scheme) -> None:  # noqa: F821
    """Refuse a store whose source charges for `scheme` sit in the scheme's own output column (an older
    curation wrote SPICE's MBIS charges to ``charges/mbis``): a run would read its own results back as source."""
    own = f"charges/{scheme.name}"
    if (scheme.source_column is not None and scheme.source_column not in store.columns and own in store.columns
            and f"charges_scheme/{scheme.name}" not in store.columns):
        raise TnqError(f"{store.root}: its source {scheme.name} charges are in `{own}`, written by an older "
                       f"curation; curate the source again (they now go to `{scheme.source_column}`, so that "
                       "computed charges never pass for source ones)")


def load_molecules(store: "tnq_data.store.Store", source_column: str | None) -> list[StoredMolecule]:  # noqa: F821
    """Every molecule of `store` with the columns charges need, shard by shard, with the charges of
    `source_column` and their level of theory where the store has them."""
    columns = ["z", "pos", "total_charge", "multiplicity", "smiles", "source_id"]
    has_source = source_column is not None and source_column in store.columns
    levels = list(level_columns(source_column)) if has_source else []
    levels = levels if all(c in store.columns for c in levels) else []
    molecules = []
    for shard in store.iter_shards(columns + ([source_column] if has_source else []) + levels):
        arrays = shard.arrays
        atom_offset, conformer_offset = arrays["atom_offset"], arrays["conformer_offset"]
        for local in range(len(conformer_offset) - 1):
            c0, c1 = int(conformer_offset[local]), int(conformer_offset[local + 1])
            a0, a1 = int(atom_offset[c0]), int(atom_offset[c1])
            n = int(atom_offset[c0 + 1] - atom_offset[c0])
            if a1 - a0 != n * (c1 - c0):
                raise TnqError(f"{store.root}: molecule {shard.first_molecule + local} has conformers with "
                               "different atom counts; re-curate the store")
            molecules.append(StoredMolecule(
                index=shard.first_molecule + local, source_id=str(arrays["source_id"][local]),
                smiles=str(arrays["smiles"][local]), z=arrays["z"][a0:a0 + n].astype(np.int64),
                atom_starts=shard.first_atom + atom_offset[c0:c1],
                total_charge=arrays["total_charge"][c0:c1].astype(np.int64),
                multiplicity=arrays["multiplicity"][c0:c1].astype(np.int64),
                positions=arrays["pos"][a0:a1].reshape(c1 - c0, n, 3),
                source=arrays[source_column][a0:a1].reshape(c1 - c0, n) if has_source else None,
                source_level=(str(arrays[levels[0]][local]), str(arrays[levels[1]][local])) if levels else ("", "")))
    return molecules


def identify(molecule: StoredMolecule) -> None:
    """Set the canonical identity of `molecule`, or the reason it has none.

    A molecule stored without SMILES (QMspin carbenes) is identified by its atomic numbers in store order:
    geometry-dependent schemes (gfn2) key their cache on the geometry as well, and SMILES-based schemes
    fail on it with their own reason.
    """
    if not molecule.smiles:
        molecule.canonical = ("atoms:" + ",".join(map(str, molecule.z.tolist())), np.arange(len(molecule.z)))
        return
    try:
        molecule.canonical = canonical_identity(store_mol(molecule.smiles, molecule.z))
    except ChargeFailure as err:
        molecule.identity_error = str(err)
