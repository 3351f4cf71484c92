"""One scheme pass over the pending molecules: cache look-ups, chunks on the cluster, per-molecule outcomes.

Misses go to the cluster in small chunks, at most a few chunks per worker in flight, and every result is
cached as it arrives, so an interrupted run loses only the chunks in flight. Only failures of the molecule are
cached; a timeout is recorded but not cached (a re-run retries it), and a failure of the environment or a
tool stops the run.
"""

import time
import warnings

import numpy as np

from tnq_core.errors import TnqError
from tnq_data.charges.base import ChargeFailure, ChargeUnit, Scheme, ToolFailure, TransientFailure, as_failure, \
    conserve_charge
from tnq_data.charges.cache import ChargeCache, Entry
from tnq_data.charges.load import StoredMolecule
from tnq_data.charges.plan import Plan, plan_units
from tnq_data.charges.sandbox import sandbox
from tnq_data.parallel import bounded_map

#: Chunks in flight per worker thread.
IN_FLIGHT_PER_WORKER = 3
#: Kinds of outcome of a unit: charges, a failure of the molecule (cached), a retryable one, a tool failure.
OK, MOLECULE, RETRYABLE, TOOL = "ok", "molecule", "retryable", "tool"


def compute_chunk(scheme: Scheme, units: list[ChargeUnit], timeout: float | None) -> tuple[dict, list[tuple]]:
    """Worker task: this worker's tool versions and ``(charges (N,) or None, reason or None, kind)`` per unit."""
    try:
        tools = scheme.tools()
    except Exception as err:  # noqa: BLE001  reported by the driver as a set-up failure of this worker
        return {}, [(None, str(as_failure(err)), TOOL)] * len(units)
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
                except (TransientFailure, ToolFailure) as err:
                    results.append(err)
    return tools, [_outcome(result) for result in results]


def _outcome(result: object) -> tuple[np.ndarray | None, str | None, str]:
    if isinstance(result, TransientFailure):
        return None, str(result), RETRYABLE
    if isinstance(result, ChargeFailure):
        return None, str(result), MOLECULE
    if isinstance(result, ToolFailure):
        return None, str(result), TOOL
    return np.asarray(result, dtype=np.float64), None, OK


def _compute_one(argument: tuple[Scheme, ChargeUnit]) -> np.ndarray | ChargeFailure | ToolFailure:
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
        if self.scheme.needs_smiles:
            without = [p for p in todo if not self.molecules[p].smiles]
            for p in without:
                self.molecules[p].failures.append(
                    {"scheme": self.scheme.name, "reason": "no SMILES stored for this molecule (scheme "
                     f"{self.scheme.name} needs one)", "retryable": False})
            todo = [p for p in todo if self.molecules[p].smiles]
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
            for key in self._compute(plan, misses, client_factory, timeout, by_key):
                for p in by_key[key]:
                    waiting[p].discard(key)
                    if not waiting[p]:
                        still += self._settle(p, plan, bar, counts)
        lost = [self.molecules[p].source_id for p, keys in waiting.items() if keys]
        if lost:  # every molecule must end charged or as a failure row, never silently NaN
            raise RuntimeError(f"{self.scheme.name}: no result came back for molecules {lost[:5]}")
        return sorted(still)

    def _take_source(self, molecule: StoredMolecule) -> None:
        """Use charges of the scheme's source column (e.g. SPICE's MBIS) when every conformer has them and the
        scheme accepts their level of theory."""
        if (self.scheme.source_column is None or molecule.source is None
                or not np.all(np.isfinite(molecule.source)) or not self.scheme.accepts_source(molecule.source_level)):
            return
        try:
            molecule.charges = np.stack([conserve_charge(q, int(t))
                                         for q, t in zip(molecule.source, molecule.total_charge)])
            molecule.scheme, molecule.level = self.scheme.name, molecule.source_level
        except ChargeFailure as err:
            molecule.failures.append({"scheme": self.scheme.name, "reason": f"stored charges: {err}",
                                      "retryable": False})

    def _compute(self, plan: Plan, misses: list[str], client_factory, timeout: float | None,
                 by_key: dict[str, list[int]]):
        """Compute `misses` on the cluster in chunks, as they complete; yield each key once its result is known
        (and cached, unless retryable). Raises `TnqError` on a tool failure or a worker with other tools."""
        size = self.scheme.chunk_size
        chunks = [misses[i:i + size] for i in range(0, len(misses), size)]
        tasks = ((self.scheme, [plan.units[k][0] for k in chunk], timeout) for chunk in chunks)
        for index, (tools, results) in bounded_map(client_factory(), compute_chunk, tasks, IN_FLIGHT_PER_WORKER,
                                                   ordered=False):
            for key, (charges, reason, kind) in zip(chunks[index], results, strict=True):
                if kind == TOOL:
                    molecule = self.molecules[by_key[key][0]]
                    raise TnqError(f"scheme {self.scheme.name} could not run on molecule {molecule.index} "
                                   f"({molecule.source_id}): {reason}; this is a problem of the environment or of "
                                   "a tool, not of the molecule: fix it and run again (nothing was written, and "
                                   "no failure was cached for it)")
                if tools != plan.tools:
                    raise TnqError(f"a dask worker runs scheme {self.scheme.name} with {tools} but this process "
                                   f"has {plan.tools}; the cache is keyed on the tools' versions, so give the "
                                   "workers the same environment (or drop `scheduler`)")
                rank = plan.units[key][1]
                entry = Entry(None, reason, kind == RETRYABLE) if charges is None \
                    else Entry(to_canonical(charges, rank))
                if not entry.retryable:
                    self.cache.put(key, entry, plan.n_atoms[key])
                self.results[key] = entry
                yield key

    def _settle(self, position: int, plan: Plan, bar, counts: dict) -> list[int]:
        """Record the outcome of molecule `position`; return [position] if it stays pending."""
        molecule = self.molecules[position]
        if molecule.charges is None:
            entries = [self.results[k] for k in plan.keys.get(position, [])]
            failed = [e for e in entries if e.reason is not None]
            if failed or not entries:
                if failed:
                    molecule.failures.append({"scheme": self.scheme.name, "reason": failed[0].reason,
                                              "retryable": any(e.retryable for e in failed)})
                if not self.last:
                    return [position]
            else:
                _, rank = molecule.canonical
                molecule.charges = np.stack([e.charges[rank] for e in entries])
                molecule.scheme, molecule.level = self.scheme.name, self.scheme.level()
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
