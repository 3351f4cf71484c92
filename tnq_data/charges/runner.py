"""`compute_charges` / `run_charges`: load and plan the units of a store, answer them from the cache or a dask
cluster, write a version.

For each scheme of the chain (the scheme, then its fallbacks) the molecules still without charges are split
into units (one per (total charge, multiplicity) from the SMILES, or one per conformer for geometry-dependent
schemes). Units with the same cache key are computed once. A molecule takes the first scheme of the chain
for which all its units succeed. A run in which every molecule fails writes nothing (`advice` says what would
work). The steps live in `load`, `plan`, `execute`, `write` and `summary`.
"""

import time
from pathlib import Path

from tnq_core.errors import TnqError
from tnq_core.progress import SILENT, Reporter
from tnq_data.charges.cache import ChargeCache, default_cache_dir
from tnq_data.charges.check import check_store
from tnq_data.charges.execute import SchemePass
from tnq_data.charges.advice import all_failed_message
from tnq_data.charges.load import check_source, identify, load_molecules
from tnq_data.charges.plan import scheme_chain
from tnq_data.charges.summary import ChargesRun, summarise
from tnq_data.charges.write import write_charges
from tnq_data.parallel import LazyClient
from tnq_data.store import open_store


def compute_charges(store: Path, scheme: str, fallback: list[str] | tuple = (), per_conformer: bool = False,
                    workers: int = 1, scheduler: str | None = None, timeout: float | None = None,
                    cache_dir: Path | None = None, compute: bool = False, method: str | None = None,
                    basis: str | None = None, reporter: Reporter = SILENT) -> str:
    """Add ``charges/<scheme>`` (atom axis, e, NaN where failed) and ``charges_scheme/<scheme>`` (molecule
    axis, the scheme used or "") to the store at `store`; return the new version id.

    Failures are rows (molecule, source_id, scheme, reason) of table ``charges/<scheme>/failures``. The result
    depends only on the store and the chemistry arguments, never on `workers`, `scheduler` or the cache.
    `reporter` shows the progress (silent by default); `run_charges` also returns what the run did.
    """
    return run_charges(store, scheme, fallback, per_conformer, workers, scheduler, timeout, cache_dir, compute,
                       method, basis, reporter).version


def run_charges(store: Path, scheme: str, fallback: list[str] | tuple = (), per_conformer: bool = False,
                workers: int = 1, scheduler: str | None = None, timeout: float | None = None,
                cache_dir: Path | None = None, compute: bool = False, method: str | None = None,
                basis: str | None = None, reporter: Reporter = SILENT) -> ChargesRun:
    """`compute_charges`, returning the new version with molecules per scheme used, failures and cache use."""
    if timeout is not None and timeout <= 0:
        raise TnqError(f"`timeout` must be positive, got {timeout}")
    chain = scheme_chain(scheme, fallback, per_conformer, compute, method, basis)
    report = check_store(store)
    if report["inconsistent"]:
        raise TnqError(f"{store}: {report['inconsistent']} conformers have a multiplicity impossible for their "
                       f"electron count; run `tnq-data check {store}` and fix the source before charges")
    opened = open_store(store)
    for member in chain:
        check_source(opened, member)
    cache = ChargeCache(cache_dir if cache_dir is not None else default_cache_dir())
    sources = [s.source_column for s in chain if s.source_column is not None]
    molecules = load_molecules(opened, sources[0] if sources else None)
    for molecule in molecules:
        identify(molecule)
    pending = []
    for position, molecule in enumerate(molecules):
        if molecule.identity_error is None:
            pending.append(position)
        else:
            molecule.failures.append({"scheme": scheme, "reason": molecule.identity_error, "retryable": False})

    counts = {"done": 0, "failed": len(molecules) - len(pending), "start": time.perf_counter()}
    with LazyClient(workers, scheduler) as client_factory, \
            reporter.bar(f"charges {scheme}", len(molecules)) as bar:
        bar.update(0, advance=counts["failed"])
        for i, member in enumerate(chain):
            pending = SchemePass(member, molecules, cache, last=i == len(chain) - 1).run(
                pending, per_conformer, client_factory, timeout, bar, counts)

    if molecules and not any(m.scheme for m in molecules):
        raise TnqError(all_failed_message(store, molecules, chain))
    vid = write_charges(Path(store), opened, molecules, scheme, chain, per_conformer, timeout)
    return summarise(molecules, scheme, cache, vid)
