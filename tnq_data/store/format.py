"""The store schema: axes, built-in columns with their dtypes and units, and in-memory batches."""

import re
from dataclasses import dataclass, field

import numpy as np

from tnq_core.errors import TnqError

SCHEMA_VERSION = 1
FORMAT_NAME = "tnq-store"
AXES = ("atom", "conformer", "molecule")

#: Built-in columns: name -> (axis, dtype, inner shape, unit). Other columns may be added on any axis.
BUILTIN_COLUMNS: dict[str, tuple[str, str, tuple[int, ...], str | None]] = {
    "z": ("atom", "uint8", (), None),
    "pos": ("atom", "float32", (3,), "angstrom"),
    "forces": ("atom", "float32", (3,), "eV/angstrom"),
    "energy": ("conformer", "float64", (), "eV"),
    "formation_energy": ("conformer", "float64", (), "eV"),
    "total_charge": ("conformer", "int8", (), "e"),
    "multiplicity": ("conformer", "int8", (), None),
    "dipole": ("conformer", "float64", (3,), "e*angstrom"),
    "molecule": ("conformer", "int64", (), None),
    "atom_offset": ("conformer", "int64", (), None),
    "composition": ("conformer", "int32", (), None),
    "smiles": ("molecule", "str", (), None),
    "subset": ("molecule", "str", (), None),
    "source_id": ("molecule", "str", (), None),
    "conformer_offset": ("molecule", "int64", (), None),
}
#: Per-atom partial charges: one column per scheme, ``charges/<scheme>``, float32, e.
CHARGE_PREFIX = "charges/"
REQUIRED = {
    "atom": ("z", "pos"),
    "conformer": ("energy", "total_charge", "multiplicity"),
    "molecule": ("smiles", "subset", "source_id"),
}
#: Columns the writer derives from the batch counts; a batch must not carry them.
DERIVED = ("molecule", "atom_offset", "conformer_offset", "composition")
#: Offsets have one more row than their axis (axis name -> offset column).
OFFSET_COLUMNS = {"atom_offset": "conformer", "conformer_offset": "molecule"}

_NAME = re.compile(r"^[A-Za-z0-9_]+(/[A-Za-z0-9_.+-]+)*$")


def check_column_name(name: str) -> None:
    """Raise `TnqError` unless `name` is a valid column name (letters, digits, `_`, `/`-separated parts)."""
    if not _NAME.match(name):
        raise TnqError(f"invalid column name {name!r}: use letters, digits and '_' in '/'-separated parts (e.g. charges/am1bcc)")


def column_spec(name: str, array: np.ndarray, axis: str) -> tuple[str, tuple[int, ...], str | None]:
    """Return (dtype name, inner shape, unit) of column `name` holding `array` on `axis`."""
    if name in BUILTIN_COLUMNS:
        spec_axis, dtype, inner, unit = BUILTIN_COLUMNS[name]
        if spec_axis != axis:
            raise TnqError(f"column {name!r} belongs on the {spec_axis} axis, not the {axis} axis")
        return dtype, inner, unit
    if name.startswith(CHARGE_PREFIX):
        return "float32", (), "e"
    return dtype_name(array), tuple(array.shape[1:]), None


def dtype_name(array: np.ndarray) -> str:
    """The store's dtype name of `array`: a numpy dtype name, or ``str`` for text."""
    if array.dtype.kind in "OUT":
        return "str"
    return array.dtype.name


def cast_column(name: str, array: np.ndarray, dtype: str) -> np.ndarray:
    """`array` as `dtype` (``str`` gives an object array of Python str), refusing lossy integer casts."""
    if dtype == "str":
        return np.asarray(array, dtype=object).astype(str).astype(object)
    array = np.asarray(array)
    target = np.dtype(dtype)
    if target.kind in "iu" and array.size:
        if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
            raise TnqError(f"column {name!r} has non-finite values but must be {dtype}")
        info = np.iinfo(target)
        lo, hi = array.min(), array.max()
        if lo < info.min or hi > info.max or (array.dtype.kind == "f" and np.any(array != np.round(array))):
            raise TnqError(f"column {name!r} has values in [{lo}, {hi}] that do not fit {dtype}")
    return np.ascontiguousarray(array, dtype=target)


@dataclass
class Column:
    """A column to add to a store: `values` over the whole store, in store order.

    `axis` is ``atom`` (A rows), ``conformer`` (C rows) or ``molecule`` (M rows); `unit` is free text.
    """

    axis: str
    values: np.ndarray
    unit: str | None = None


@dataclass
class MoleculeBatch:
    """Whole molecules in memory, columnar, in store units (Å, eV, e).

    `molecule` needs ``smiles``, ``subset``, ``source_id`` and ``n_conformers`` (M,); `conformer` needs
    ``energy``, ``total_charge``, ``multiplicity`` and ``n_atoms`` (C,); `atom` needs ``z`` (A,) and
    ``pos`` (A, 3). Any other entry becomes a column on that axis.
    """

    molecule: dict[str, np.ndarray] = field(default_factory=dict)
    conformer: dict[str, np.ndarray] = field(default_factory=dict)
    atom: dict[str, np.ndarray] = field(default_factory=dict)

    def axis(self, name: str) -> dict[str, np.ndarray]:
        """The columns of axis `name`."""
        return {"atom": self.atom, "conformer": self.conformer, "molecule": self.molecule}[name]

    @property
    def n_molecules(self) -> int:
        return len(self.molecule["n_conformers"])

    def validated(self) -> "MoleculeBatch":
        """A copy with canonical dtypes, after checking names, required columns and row counts."""
        n_conf = np.asarray(self.molecule.get("n_conformers", ()), dtype=np.int64)
        n_atoms = np.asarray(self.conformer.get("n_atoms", ()), dtype=np.int64)
        rows = {"molecule": len(n_conf), "conformer": int(n_conf.sum()), "atom": int(n_atoms.sum())}
        if len(n_atoms) != rows["conformer"]:
            raise TnqError(f"batch has {len(n_atoms)} conformers but n_conformers sums to {rows['conformer']}")
        if np.any(n_conf < 1) or np.any(n_atoms < 1):
            raise TnqError("batch has a molecule without conformers or a conformer without atoms")
        out = MoleculeBatch()
        for axis in AXES:
            columns = self.axis(axis)
            missing = [name for name in REQUIRED[axis] if name not in columns]
            if missing:
                raise TnqError(f"batch lacks the {axis} column(s) {', '.join(missing)}")
            for name, values in columns.items():
                if name in ("n_conformers", "n_atoms"):
                    continue
                if name in DERIVED:
                    raise TnqError(f"column {name!r} is derived by the writer; do not pass it in a batch")
                check_column_name(name)
                values = np.asarray(values)
                if len(values) != rows[axis]:
                    raise TnqError(f"{axis} column {name!r} has {len(values)} rows, expected {rows[axis]}")
                dtype, inner, _ = column_spec(name, values, axis)
                if tuple(values.shape[1:]) != inner:
                    raise TnqError(f"{axis} column {name!r} has shape {values.shape}, expected ({rows[axis]}, {', '.join(map(str, inner))})")
                out.axis(axis)[name] = cast_column(name, values, dtype)
        out.molecule["n_conformers"] = n_conf
        out.conformer["n_atoms"] = n_atoms
        if rows["atom"] and (out.atom["z"].min() < 1 or out.atom["z"].max() > 118):
            raise TnqError("column 'z' has atomic numbers outside 1..118")
        if np.any(out.conformer["multiplicity"] < 1):
            raise TnqError("column 'multiplicity' must be 2S+1 >= 1")
        return out


def concat_batches(batches: list[MoleculeBatch]) -> MoleculeBatch:
    """Concatenate validated batches with identical columns along every axis."""
    if len(batches) == 1:
        return batches[0]
    out = MoleculeBatch()
    for axis in AXES:
        for name in batches[0].axis(axis):
            out.axis(axis)[name] = np.concatenate([b.axis(axis)[name] for b in batches])
    return out


def slice_molecules(batch: MoleculeBatch, start: int, stop: int) -> MoleculeBatch:
    """Molecules [start, stop) of a validated batch, as a batch of views."""
    conf_off = np.concatenate([[0], np.cumsum(batch.molecule["n_conformers"])])
    c0, c1 = int(conf_off[start]), int(conf_off[stop])
    atom_off = np.concatenate([[0], np.cumsum(batch.conformer["n_atoms"])])
    a0, a1 = int(atom_off[c0]), int(atom_off[c1])
    bounds = {"molecule": (start, stop), "conformer": (c0, c1), "atom": (a0, a1)}
    out = MoleculeBatch()
    for axis in AXES:
        lo, hi = bounds[axis]
        out.axis(axis).update({name: values[lo:hi] for name, values in batch.axis(axis).items()})
    return out
