"""Extended XYZ for MACE (and any ase-based reader): one frame per conformer, keys configurable.

Defaults are MACE's (`mace/tools/default_keys.py`): `REF_energy` (eV) and `total_charge` (e) and
`total_spin` (the multiplicity 2S+1, as MACE reads it) in the info line, `REF_forces` (eV/Å) per atom.
Positions in Å. Each molecule's `source_id` and `subset` go to the info keys `source_id` and `config_type`
(MACE groups its error tables by `config_type`); per-atom charges `charges/<scheme>` to `<scheme>_charges`.
Energies are written in their shortest exact form and float32 columns with 9 significant digits, which
represent every float32 exactly, so importing the file again gives the same bits.
"""

import re
from dataclasses import dataclass

import numpy as np

from tnq_core.errors import TnqError
from tnq_data.export.selection import Block

#: Info keys written besides the four labels; a label key may not take one of these names.
SOURCE_KEY, SUBSET_KEY = "source_id", "config_type"
_RESERVED = {SOURCE_KEY, SUBSET_KEY, "Properties", "pbc", "Lattice", "species", "pos"}
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
#: Float32 values with 9 significant digits: enough to give back every float32 exactly (FLT_DECIMAL_DIG).
FLOAT = "%.9g"
#: Conformers formatted at once (bounds the memory of the text of one shard).
PART_CONFORMERS = 2048


@dataclass(frozen=True)
class ExtxyzKeys:
    """Names of the energy (eV) and forces (eV/Å) keys, of the total charge (e) and of the multiplicity (2S+1)."""

    energy_key: str = "REF_energy"
    forces_key: str = "REF_forces"
    charge_key: str = "total_charge"
    spin_key: str = "total_spin"

    def check(self) -> None:
        """`TnqError` for a key that is not a plain identifier, is reserved, or is given twice."""
        names = {"energy_key": self.energy_key, "forces_key": self.forces_key, "charge_key": self.charge_key,
                 "spin_key": self.spin_key}
        for parameter, key in names.items():
            if not _KEY.match(key) or key in _RESERVED:
                raise TnqError(f"`{parameter}` {key!r} cannot be an extended XYZ key: use letters, digits and '_', "
                               f"not one of {', '.join(sorted(_RESERVED))}")
        if len(set(names.values())) < len(names):
            raise TnqError(f"two keys share one name ({', '.join(f'`{p}`={k!r}' for p, k in names.items())}); "
                           "give each its own")


def _properties(block: Block, keys: ExtxyzKeys, schemes: list[str]) -> str:
    fields = ["species:S:1", "pos:R:3"] + ([f"{keys.forces_key}:R:3"] if block.forces is not None else [])
    return ":".join(fields + [f"{scheme}_charges:R:1" for scheme in schemes])


def atom_lines(block: Block) -> list[str]:
    """One line per atom of `block`: symbol, then position, forces and charges with 9 significant digits."""
    from ase.data import chemical_symbols

    columns = [block.pos] + ([block.forces] if block.forces is not None else [])
    columns += [values[:, None] for _, values in sorted(block.charges.items())]
    values = np.concatenate(columns, axis=1).astype(np.float64)
    line = "%s " + " ".join([FLOAT] * values.shape[1])
    symbols = np.asarray(chemical_symbols)[block.z].tolist()
    return [line % (symbol, *row) for symbol, row in zip(symbols, values.tolist())]


def format_block(block: Block, keys: ExtxyzKeys) -> str:
    """The frames of `block` as extended XYZ text (info lines written by ase's own formatter)."""
    from ase.io.extxyz import key_val_dict_to_str

    schemes = sorted(block.charges)
    properties = _properties(block, keys, schemes)
    lines = atom_lines(block)
    offsets = block.atom_offset.tolist()
    frames = []
    for i in range(len(block)):
        info = {keys.energy_key: float(block.energy[i]), keys.charge_key: int(block.total_charge[i]),
                keys.spin_key: int(block.multiplicity[i])}
        for key, values in ((SOURCE_KEY, block.source_id), (SUBSET_KEY, block.subset)):
            if values[i]:  # ase reads an empty value back wrongly: leave the key out
                info[key] = str(values[i])
        info["Properties"] = properties
        info["pbc"] = np.zeros(3, dtype=bool)
        frames.append(f"{offsets[i + 1] - offsets[i]}\n{key_val_dict_to_str(info)}\n"
                      + "\n".join(lines[offsets[i]:offsets[i + 1]]) + "\n")
    return "".join(frames)
