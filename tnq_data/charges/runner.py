"""`compute_charges`: plan the units of a store, answer them from the cache or a dask cluster, write a version.

For each scheme of the chain (the scheme, then its fallbacks) the molecules still without charges are split
into units (one per (total charge, multiplicity) from the SMILES, or one per conformer for geometry-dependent
schemes). Units with the same cache key are computed once. Misses go to the cluster in small chunks, at most a
few chunks per worker in flight, and every result is cached as it arrives, so an interrupted run loses only
the chunks in flight. A molecule takes the first scheme of the chain for which all its units succeed.
"""

import itertools
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rich.console import Console

from tnq_data.charges.base import ChargeFailure, ChargeUnit, Scheme, TransientFailure, as_failure, conserve_charge
from tnq_data.charges.cache import ChargeCache, Entry, cache_key, default_cache_dir
from tnq_data.charges.check import check_store
from tnq_data.charges.molecule import canonical_identity, store_mol
from tnq_data.charges.registry import get_scheme
from tnq_data.charges.sandbox import sandbox
from tnq_core.errors import TnqError
from tnq_data.parallel import dask_client
from tnq_core.progress import progress_bar
from tnq_data.store import Column, add_columns, open_store

#: Chunks in flight per worker thread.
IN_FLIGHT_PER_WORKER = 3


@dataclass
class _Molecule:
    """One stored molecule: its conformers' atoms and labels, canonical identity, and the outcome so far."""

    index: int
    source_id: str
    smiles: str
    z: np.ndarray                  # (N,) atomic numbers, shared by all conformers
    atom_starts: np.ndarray        # (C_m,) global index of each conformer's first atom
    total_charge: np.ndarray       # (C_m,) e
    multiplicity: np.ndarray       # (C_m,)
    positions: np.ndarray          # (C_m, N, 3) Å
    source: np.ndarray | None      # (C_m, N) charges already in the store (NaN where absent), or None
    canonical: tuple[str, np.ndarray] | None = None   # canonical SMILES and rank (N,)
    identity_error: str | None = None
    scheme: str = ""
    charges: np.ndarray | None = None   # (C_m, N) e, store order
    failures: list[dict] = field(default_factory=list)


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


def _load_molecules(store: "tnq_data.store.Store", source_column: str | None) -> list[_Molecule]:  # noqa: F821
    """Every molecule of `store` with the columns charges need, shard by shard."""
    columns = ["z", "pos", "total_charge", "multiplicity", "smiles", "source_id"]
    has_source = source_column is not None and source_column in store.columns
    molecules = []
    for shard in store.iter_shards(columns + ([source_column] if has_source else [])):
        arrays = shard.arrays
        atom_offset, conformer_offset = arrays["atom_offset"], arrays["conformer_offset"]
        for local in range(len(conformer_offset) - 1):
            c0, c1 = int(conformer_offset[local]), int(conformer_offset[local + 1])
            a0, a1 = int(atom_offset[c0]), int(atom_offset[c1])
            n = int(atom_offset[c0 + 1] - atom_offset[c0])
            if a1 - a0 != n * (c1 - c0):
                raise TnqError(f"{store.root}: molecule {shard.first_molecule + local} has conformers with "
                               "different atom counts; re-curate the store")
            molecules.append(_Molecule(
                index=shard.first_molecule + local, source_id=str(arrays["source_id"][local]),
                smiles=str(arrays["smiles"][local]), z=arrays["z"][a0:a0 + n].astype(np.int64),
                atom_starts=shard.first_atom + atom_offset[c0:c1],
                total_charge=arrays["total_charge"][c0:c1].astype(np.int64),
                multiplicity=arrays["multiplicity"][c0:c1].astype(np.int64),
                positions=arrays["pos"][a0:a1].reshape(c1 - c0, n, 3),
                source=arrays[source_column][a0:a1].reshape(c1 - c0, n) if has_source else None))
    return molecules


def _identify(molecule: _Molecule) -> None:
    """Set the canonical identity of `molecule`, or the reason it has none.

    A molecule stored without SMILES (QMspin carbenes) is identified by its atomic numbers in store order:
    geometry-dependent schemes (gfn2) key their cache on the geometry as well, and SMILES-based schemes
    fail on it with their own reason.
    """
    if not molecule.smiles:
        molecule.canonical = ("atoms:" + ",".join(map(str, molecule.z.tolist())), np.arange(len(molecule.z)))
        return
    try:
        molecule.canonical = canonical_identity(store_mol(molecule.smiles, molecule.z))
    except ChargeFailure as err:
        molecule.identity_error = str(err)


@dataclass
class _Plan:
    """The units of one scheme pass: per molecule, per conformer, the unit's cache key."""

    keys: dict[int, list[str]]                   # molecule position -> key per conformer
    units: dict[str, tuple[ChargeUnit, np.ndarray]]  # key -> (unit in store order, canonical rank)
    n_atoms: dict[str, int]


def _plan(scheme: Scheme, molecules: list[_Molecule], pending: list[int], per_conformer: bool) -> _Plan:
    """Cache keys and one representative unit per key for the `pending` molecules."""
    plan = _Plan({}, {}, {})
    geometric = scheme.geometry == "always" or (scheme.geometry == "optional" and per_conformer)
    for position in pending:
        molecule = molecules[position]
        smiles, rank = molecule.canonical
        inverse = np.argsort(rank)    # canonical position -> store atom
        keys = []
        for c in range(len(molecule.total_charge)):
            charge, mult = int(molecule.total_charge[c]), int(molecule.multiplicity[c])
            geometry = molecule.positions[c] if geometric else None
            key = cache_key(scheme.name, scheme.version, scheme.params, smiles, charge, mult,
                            None if geometry is None else geometry[inverse])
            keys.append(key)
            if key not in plan.units:
                plan.units[key] = (ChargeUnit(molecule.smiles, molecule.z, charge, mult, geometry), rank)
                plan.n_atoms[key] = len(molecule.z)
        plan.keys[position] = keys
    return plan


class _Pass:
    """One scheme over the pending molecules: cache look-ups, cluster submissions, outcomes."""

    def __init__(self, scheme: Scheme, molecules: list[_Molecule], cache: ChargeCache, last: bool) -> None:
        self.scheme, self.molecules, self.cache, self.last = scheme, molecules, cache, last
        self.results: dict[str, Entry] = {}

    def run(self, pending: list[int], per_conformer: bool, client_factory, timeout: float | None,
            bar, counts: dict) -> list[int]:
        """Give charges to the molecules of `pending` it can; return those still pending."""
        for position in pending:
            self._take_source(self.molecules[position])
        todo = [p for p in pending if self.molecules[p].charges is None]
        plan = _plan(self.scheme, self.molecules, todo, per_conformer)
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

    def _take_source(self, molecule: _Molecule) -> None:
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

    def _compute(self, plan: _Plan, misses: list[str], client_factory, timeout: float | None):
        """Compute `misses` on the cluster; yield each key once its result is cached."""
        from distributed import as_completed

        size = self.scheme.chunk_size
        chunks = [misses[i:i + size] for i in range(0, len(misses), size)]
        client = client_factory()
        window = IN_FLIGHT_PER_WORKER * max(1, sum(client.nthreads().values()))
        submitted = {}

        def submit(chunk: list[str]):
            future = client.submit(compute_chunk, self.scheme, [plan.units[k][0] for k in chunk], timeout,
                                   pure=False)
            submitted[future] = chunk
            return future

        queue = iter(chunks)
        running = as_completed([submit(c) for c in itertools.islice(queue, window)])
        for future in running:
            chunk = submitted.pop(future)
            for key, (charges, reason, transient) in zip(chunk, future.result()):
                rank = plan.units[key][1]
                entry = Entry(None, reason) if charges is None else Entry(_to_canonical(charges, rank))
                if not transient:
                    self.cache.put(key, entry, plan.n_atoms[key])
                self.results[key] = entry
                yield key
            following = next(queue, None)
            if following is not None:
                running.add(submit(following))

    def _settle(self, position: int, plan: _Plan, bar, counts: dict) -> list[int]:
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


def _to_canonical(charges: np.ndarray, rank: np.ndarray) -> np.ndarray:
    """Per-atom values (N,) from store order to canonical-rank order."""
    out = np.empty_like(charges)
    out[rank] = charges
    return out


def _schemes(scheme: str, fallback: list[str] | tuple, per_conformer: bool, compute: bool,
             method: str | None, basis: str | None) -> list[Scheme]:
    """The scheme chain, validated, with the MBIS parameters given to MBIS only."""
    names = [scheme, *fallback]
    if len(set(names)) != len(names):
        raise TnqError(f"--fallback repeats a scheme ({', '.join(names)}); list each scheme once")
    if (compute or method or basis) and "mbis" not in names:
        raise TnqError("--compute, --method and --basis apply to the mbis scheme only; drop them or use mbis")
    chain = [get_scheme(n, **({"compute": compute, "method": method, "basis": basis} if n == "mbis" else {}))
             for n in names]
    if per_conformer and chain[0].geometry == "never":
        raise TnqError(f"scheme {scheme!r} does not depend on the geometry; drop --per-conformer")
    return chain


def compute_charges(store: Path, scheme: str, fallback: list[str] | tuple = (), per_conformer: bool = False,
                    workers: int = 1, scheduler: str | None = None, timeout: float | None = None,
                    cache_dir: Path | None = None, compute: bool = False, method: str | None = None,
                    basis: str | None = None, quiet: bool = False) -> str:
    """Add ``charges/<scheme>`` (atom axis, e, NaN where failed) and ``charges_scheme/<scheme>`` (molecule
    axis, the scheme used or "") to the store at `store`; return the new version id.

    Failures are rows (molecule, source_id, scheme, reason) of table ``charges/<scheme>/failures``. The result
    depends only on the store and the chemistry arguments, never on `workers`, `scheduler` or the cache.
    """
    if timeout is not None and timeout <= 0:
        raise TnqError(f"--timeout must be positive, got {timeout}")
    chain = _schemes(scheme, fallback, per_conformer, compute, method, basis)
    report = check_store(store)
    if report["inconsistent"]:
        raise TnqError(f"{store}: {report['inconsistent']} conformers have a multiplicity impossible for their "
                       f"electron count; run `tnq-data check {store}` and fix the source before charges")
    opened = open_store(store)
    cache = ChargeCache(cache_dir if cache_dir is not None else default_cache_dir())
    sources = [s.source_column for s in chain if s.source_column is not None]
    molecules = _load_molecules(opened, sources[0] if sources else None)
    for molecule in molecules:
        _identify(molecule)
    pending = []
    for position, molecule in enumerate(molecules):
        if molecule.identity_error is None:
            pending.append(position)
        else:
            molecule.failures.append({"scheme": scheme, "reason": molecule.identity_error})

    counts = {"done": 0, "failed": len(molecules) - len(pending), "start": time.perf_counter()}
    with _LazyClient(workers, scheduler) as client_factory, \
            progress_bar(f"charges {scheme}", len(molecules), quiet=quiet) as bar:
        bar.update(0, advance=counts["failed"])
        for i, member in enumerate(chain):
            pending = _Pass(member, molecules, cache, last=i == len(chain) - 1).run(
                pending, per_conformer, client_factory, timeout, bar, counts)

    vid = _write(Path(store), opened, molecules, scheme, chain, per_conformer, timeout)
    if not quiet:
        _summarise(molecules, scheme, cache, vid)
    return vid


class _LazyClient:
    """Starts the dask client only when something must be computed (a fully cached run starts none)."""

    def __init__(self, workers: int, scheduler: str | None) -> None:
        self.workers, self.scheduler = workers, scheduler
        self._context = self._client = None

    def __enter__(self):
        return self

    def __call__(self):
        if self._client is None:
            self._context = dask_client(self.workers, self.scheduler)
            self._client = self._context.__enter__()
        return self._client

    def __exit__(self, *exc) -> None:
        if self._context is not None:
            self._context.__exit__(*exc)


def _write(root: Path, opened, molecules: list[_Molecule], scheme: str, chain: list[Scheme],
           per_conformer: bool, timeout: float | None) -> str:
    """Add the columns and the failures table as one new version."""
    charges = np.full(opened.n_atoms, np.nan, dtype=np.float32)
    used = np.array([m.scheme for m in molecules], dtype=object)
    rows = []
    for molecule in molecules:
        if molecule.charges is not None:
            n = len(molecule.z)
            for start, q in zip(molecule.atom_starts, molecule.charges):
                charges[start:start + n] = q
        rows += [{"molecule": molecule.index, "source_id": molecule.source_id, **failure,
                  "used": molecule.scheme} for failure in molecule.failures]
    parameters = {"scheme": scheme, "fallback": [s.name for s in chain[1:]], "per_conformer": per_conformer,
                  "timeout": timeout, "versions": {s.name: s.version for s in chain},
                  "params": {s.name: s.params for s in chain if s.params}}
    return add_columns(root, {f"charges/{scheme}": Column("atom", charges, unit="e"),
                              f"charges_scheme/{scheme}": Column("molecule", used)},
                       provenance={"command": "tnq-data charges", "parameters": parameters, "inputs": []},
                       tables={f"charges/{scheme}/failures": rows})


def _summarise(molecules: list[_Molecule], scheme: str, cache: ChargeCache, vid: str) -> None:
    """Print molecules per scheme used, failures and cache use to stderr."""
    used: dict[str, int] = {}
    for molecule in molecules:
        used[molecule.scheme or "failed"] = used.get(molecule.scheme or "failed", 0) + 1
    console = Console(stderr=True, soft_wrap=True)
    console.print(f"charges/{scheme}: {len(molecules)} molecules, "
                  + ", ".join(f"{name} {n}" for name, n in sorted(used.items()))
                  + f"; cache {cache.hits} hits, {cache.writes} new; version {vid}", highlight=False)
    failed = [m for m in molecules if not m.scheme]
    for molecule in failed[:10]:
        console.print(f"  failed: molecule {molecule.index} ({molecule.source_id}): "
                      f"{molecule.failures[-1]['reason']}", highlight=False)
    if len(failed) > 10:
        console.print(f"  ... and {len(failed) - 10} more in table charges/{scheme}/failures", highlight=False)
