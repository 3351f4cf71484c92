"""One scheme pass over the pending molecules: cache look-ups, chunks on the cluster, per-molecule outcomes.

Misses go to the cluster in small chunks, at most a few chunks per worker in flight, and every result is
cached as it arrives, so an interrupted run loses only the chunks in flight.
"""

import time
import warnings

import numpy as np

from tnq_data.charges.base import ChargeFailure, ChargeUnit, Scheme, TransientFailure, as_failure, conserve_charge
from tnq_data.charges.cache import ChargeCache, Entry
from tnq_data.charges.load import StoredMolecule
from tnq_data.charges.plan import Plan, plan_units
from tnq_data.charges.sandbox import sandbox
from tnq_data.parallel import bounded_map

#: Chunks in flight per worker thread.
IN_FLIGHT_PER_WORKER = 3


def compute_chunk(scheme: Scheme, units: list[ChargeUnit], timeout: float | None) -> list[tuple]:
    """Worker task: ``(charges (N,) or None, reason or None, transient)`` per unit, in order."""
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if timeout is None:
            results = scheme.compute_many(units)
        else:
            box = sandbox(scheme.name, _compute_one, scheme.warm_up)
            results = []
            for unit in units:
                try:
                    results.append(box.run((scheme, unit), timeout))
                except Exception as err:  # noqa: BLE001  recorded per molecule
                    results.append(as_failure(err))
    for result in results:
        if isinstance(result, ChargeFailure):
            out.append((None, str(result), isinstance(result, TransientFailure)))
        else:
            out.append((np.asarray(result, dtype=np.float64), None, False))
    return out


def _compute_one(argument: tuple[Scheme, ChargeUnit]) -> np.ndarray | ChargeFailure:
    """`compute_many` of one unit (runs in the sandbox child)."""
    scheme, unit = argument
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return scheme.compute_many([unit])[0]


class SchemePass:
    """One scheme over the pending molecules: cache look-ups, cluster submissions, outcomes."""

    def __init__(self, scheme: Scheme, molecules: list[StoredMolecule], cache: ChargeCache, last: bool) -> None:
        self.scheme, self.molecules, self.cache, self.last = scheme, molecules, cache, last
        self.results: dict[str, Entry] = {}

    def run(self, pending: list[int], per_conformer: bool, client_factory, timeout: float | None,
            bar, counts: dict) -> list[int]:
        """Give charges to the molecules of `pending` it can; return those still pending."""
        for position in pending:
            self._take_source(self.molecules[position])
        todo = [p for p in pending if self.molecules[p].charges is None]
        plan = plan_units(self.scheme, self.molecules, todo, per_conformer)
        misses = []
        for key, n_atoms in plan.n_atoms.items():
            entry = self.cache.get(key, n_atoms)
            if entry is None:
                misses.append(key)
            else:
                self.results[key] = entry
        waiting = {p: {k for k in plan.keys[p] if k not in self.results} for p in todo}
        by_key: dict[str, list[int]] = {}
        for p, keys in waiting.items():
            for key in keys:
                by_key.setdefault(key, []).append(p)
        still = []
        for p in [p for p in pending if not waiting.get(p)]:
            still += self._settle(p, plan, bar, counts)
        if misses:
            for key in self._compute(plan, misses, client_factory, timeout):
                for p in by_key[key]:
                    waiting[p].discard(key)
                    if not waiting[p]:
                        still += self._settle(p, plan, bar, counts)
        lost = [self.molecules[p].source_id for p, keys in waiting.items() if keys]
        if lost:  # every molecule must end charged or as a failure row, never silently NaN
            raise RuntimeError(f"{self.scheme.name}: no result came back for molecules {lost[:5]}")
        return sorted(still)

    def _take_source(self, molecule: StoredMolecule) -> None:
        """Use charges already in the store (e.g. MBIS from SPICE) when every conformer has them."""
        if (self.scheme.source_column is None or molecule.source is None
                or not np.all(np.isfinite(molecule.source))):
            return
        try:
            molecule.charges = np.stack([conserve_charge(q, int(t))
                                         for q, t in zip(molecule.source, molecule.total_charge)])
            molecule.scheme = self.scheme.name
        except ChargeFailure as err:
            molecule.failures.append({"scheme": self.scheme.name, "reason": f"stored charges: {err}"})

    def _compute(self, plan: Plan, misses: list[str], client_factory, timeout: float | None):
        """Compute `misses` on the cluster in chunks, as they complete; yield each key once its result is cached."""
        size = self.scheme.chunk_size
        chunks = [misses[i:i + size] for i in range(0, len(misses), size)]
        tasks = ((self.scheme, [plan.units[k][0] for k in chunk], timeout) for chunk in chunks)
        for index, results in bounded_map(client_factory(), compute_chunk, tasks, IN_FLIGHT_PER_WORKER,
                                          ordered=False):
            for key, (charges, reason, transient) in zip(chunks[index], results, strict=True):
                rank = plan.units[key][1]
                entry = Entry(None, reason) if charges is None else Entry(to_canonical(charges, rank))
                if not transient:
                    self.cache.put(key, entry, plan.n_atoms[key])
                self.results[key] = entry
                yield key

    def _settle(self, position: int, plan: Plan, bar, counts: dict) -> list[int]:
        """Record the outcome of molecule `position`; return [position] if it stays pending."""
        molecule = self.molecules[position]
        if molecule.charges is None:
            entries = [self.results[k] for k in plan.keys[position]]
            reasons = [e.reason for e in entries if e.reason is not None]
            if reasons:
                molecule.failures.append({"scheme": self.scheme.name, "reason": reasons[0]})
                if not self.last:
                    return [position]
            else:
                _, rank = molecule.canonical
                molecule.charges = np.stack([e.charges[rank] for e in entries])
                molecule.scheme = self.scheme.name
        counts["failed" if molecule.charges is None else "done"] += 1
        elapsed = max(time.perf_counter() - counts["start"], 1e-9)
        bar.update(0, advance=1, status=f"failed {counts['failed']}, "
                   f"{(counts['done'] + counts['failed']) / elapsed:.1f} mol/s")
        return []


def to_canonical(charges: np.ndarray, rank: np.ndarray) -> np.ndarray:
    """Per-atom values (N,) from store order to canonical-rank order."""
    out = np.empty_like(charges)
    out[rank] = charges
    return out
