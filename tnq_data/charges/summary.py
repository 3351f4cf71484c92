"""What a charges run did, as data for the command line to show: molecules per scheme, failures, cache use."""

from dataclasses import dataclass

from tnq_data.charges.cache import ChargeCache
from tnq_data.charges.load import StoredMolecule


@dataclass
class ChargesRun:
    """The outcome of `run_charges`: the new version and what went into it."""

    version: str
    scheme: str                 # the column's scheme (the first of the chain)
    molecules: int
    used: dict[str, int]        # scheme used, or "failed" -> molecules, sorted by name
    failed: list[dict]          # per molecule without charges: molecule, source_id, its last failure's reason
    cache_hits: int
    cache_writes: int
    retryable: int              # molecules with a failure that is not cached (timeouts): a re-run retries them


def summarise(molecules: list[StoredMolecule], scheme: str, cache: ChargeCache, version: str) -> ChargesRun:
    """The `ChargesRun` of `molecules` after their passes, written as `version`."""
    used: dict[str, int] = {}
    for molecule in molecules:
        used[molecule.scheme or "failed"] = used.get(molecule.scheme or "failed", 0) + 1
    failed = [{"molecule": m.index, "source_id": m.source_id, "reason": m.failures[-1]["reason"]}
              for m in molecules if not m.scheme]
    retryable = sum(any(f.get("retryable") for f in m.failures) for m in molecules)
    return ChargesRun(version, scheme, len(molecules), dict(sorted(used.items())), failed, cache.hits, cache.writes,
                      retryable)
