"""Per-structure labels shared by the importers (extended XYZ, ASE databases): integer total charge and
multiplicity read from a key, never defaulted silently, and the one message for an impossible spin."""

import numpy as np

from tnq_core.errors import TnqError


def integer_label(value, default: int | None, key: str, option: str, where: str, place: str) -> int:
    """`value` (read from `key` in `place`, e.g. "its info line") as an integer, else `default`.

    `TnqError` naming `where` and `option` (the parameter that gives a default) when the value is missing
    and no default is given, or when it is not an integer (a float such as 1.0 is accepted).
    """
    if type(value) is int:
        return value
    if value is None:
        if default is None:
            raise TnqError(f"{where} has no '{key}' in {place}; add it or pass {option}")
        return int(default)
    number = float(value) if np.ndim(value) == 0 and not isinstance(value, (str, bytes)) else np.nan
    if not np.isfinite(number) or number != round(number):
        raise TnqError(f"{where}: '{key}'={value} is not an integer; fix {place}")
    return int(number)


def spin_parity_error(where: str, n_electrons: int, charge: int, multiplicity: int, fix: str) -> TnqError:
    """The error for a multiplicity (2S+1) that `n_electrons` (charge already applied) cannot have."""
    return TnqError(f"{where}: {n_electrons} electrons (charge {charge}) cannot have multiplicity {multiplicity}; {fix}")
