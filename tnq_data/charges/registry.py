"""The charge schemes by name."""

from tnq_data.charges.am1bcc import Am1Bcc
from tnq_data.charges.base import Scheme
from tnq_data.charges.formal import Formal
from tnq_data.charges.gasteiger import Gasteiger
from tnq_data.charges.gfn2 import Gfn2
from tnq_data.charges.mbis import Mbis
from tnq_data.charges.mmff94 import Mmff94
from tnq_data.charges.nagl import Nagl
from tnq_core.errors import TnqError

SCHEMES: dict[str, type[Scheme]] = {cls.name: cls for cls in (Am1Bcc, Gasteiger, Mmff94, Formal, Gfn2, Nagl, Mbis)}


def get_scheme(name: str, **params: object) -> Scheme:
    """An instance of scheme `name` with `params`; raises `TnqError` listing the schemes for an unknown name."""
    try:
        cls = SCHEMES[name]
    except KeyError:
        raise TnqError(f"unknown charge scheme {name!r}; choose one of {', '.join(SCHEMES)}") from None
    scheme = cls(**params)
    scheme.check_available()
    return scheme
