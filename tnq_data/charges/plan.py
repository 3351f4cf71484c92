"""What a charges run must compute: the validated scheme chain, and per scheme pass the units and cache keys."""

from dataclasses import dataclass

import numpy as np

from tnq_core.errors import TnqError
from tnq_data.charges.base import ChargeUnit, Scheme
from tnq_data.charges.cache import cache_key
from tnq_data.charges.load import StoredMolecule
from tnq_data.charges.registry import get_scheme


def scheme_chain(scheme: str, fallback: list[str] | tuple, per_conformer: bool, compute: bool,
                 method: str | None, basis: str | None) -> list[Scheme]:
    """The scheme chain, validated, with the MBIS parameters given to MBIS only."""
    names = [scheme, *fallback]
    if len(set(names)) != len(names):
        raise TnqError(f"`fallback` repeats a scheme ({', '.join(names)}); list each scheme once")
    if (compute or method or basis) and "mbis" not in names:
        raise TnqError("`compute`, `method` and `basis` apply to the mbis scheme only; drop them or use mbis")
    chain = [get_scheme(n, **({"compute": compute, "method": method, "basis": basis} if n == "mbis" else {}))
             for n in names]
    if per_conformer and chain[0].geometry == "never":
        raise TnqError(f"scheme {scheme!r} does not depend on the geometry; drop `per_conformer`")
    return chain


@dataclass
class Plan:
    """The units of one scheme pass: per molecule, per conformer, the unit's cache key."""

    keys: dict[int, list[str]]                   # molecule position -> key per conformer
    units: dict[str, tuple[ChargeUnit, np.ndarray]]  # key -> (unit in store order, canonical rank)
    n_atoms: dict[str, int]
    tools: dict[str, str]                        # the tool versions in the keys


def plan_units(scheme: Scheme, molecules: list[StoredMolecule], pending: list[int], per_conformer: bool) -> Plan:
    """Cache keys and one representative unit per key for the `pending` molecules."""
    plan = Plan({}, {}, {}, scheme.tools())
    geometric = scheme.geometry == "always" or (scheme.geometry == "optional" and per_conformer)
    for position in pending:
        molecule = molecules[position]
        smiles, rank = molecule.canonical
        inverse = np.argsort(rank)    # canonical position -> store atom
        keys = []
        for c in range(len(molecule.total_charge)):
            charge, mult = int(molecule.total_charge[c]), int(molecule.multiplicity[c])
            geometry = molecule.positions[c] if geometric else None
            key = cache_key(scheme.name, scheme.version, scheme.params, plan.tools, smiles, charge, mult,
                            None if geometry is None else geometry[inverse])
            keys.append(key)
            if key not in plan.units:
                plan.units[key] = (ChargeUnit(molecule.smiles, molecule.z, charge, mult, geometry), rank)
                plan.n_atoms[key] = len(molecule.z)
        plan.keys[position] = keys
    return plan
