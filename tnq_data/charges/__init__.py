"""Per-atom partial charges for stores (`compute_charges`, `run_charges`) and the spin-label check (`check_store`).

One module per scheme (am1bcc, gasteiger, mmff94, formal, gfn2, nagl, mbis), `registry` by name, `cache` on
disk, `sandbox` for per-molecule timeouts. A run (`runner`) loads the molecules (`load`), plans the units of
each scheme of the chain (`plan`), answers them from the cache or a dask cluster (`execute`), writes a
version (`write`) and returns what it did (`summary`) for the command line to show.
"""

from tnq_data.charges.check import check_store
from tnq_data.charges.registry import SCHEMES
from tnq_data.charges.runner import compute_charges, run_charges
from tnq_data.charges.summary import ChargesRun

__all__ = ["SCHEMES", "ChargesRun", "check_store", "compute_charges", "run_charges"]
