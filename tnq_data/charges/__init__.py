"""Per-atom partial charges for stores (`compute_charges`) and the spin-label check (`check_store`).

One module per scheme (am1bcc, gasteiger, mmff94, formal, gfn2, nagl, mbis), `registry` by name, `cache` on
disk, `sandbox` for per-molecule timeouts and `runner` for the dask-parallel, cached, resumable computation.
"""

from tnq_data.charges.check import check_store
from tnq_data.charges.registry import SCHEMES
from tnq_data.charges.runner import compute_charges

__all__ = ["SCHEMES", "check_store", "compute_charges"]
