"""What to tell a user whose charges run failed on every molecule: the cause, and a scheme that would work."""

from collections import Counter
from pathlib import Path

from tnq_data.charges.base import Scheme
from tnq_data.charges.load import StoredMolecule


def all_failed_message(store: Path, molecules: list[StoredMolecule], chain: list[Scheme]) -> str:
    """One line: every molecule failed, the most common reason with an example, and what to try instead."""
    last = [m.failures[-1] for m in molecules]
    reason, count = Counter(f["reason"] for f in last).most_common(1)[0]
    example = next(m for m, f in zip(molecules, last) if f["reason"] == reason)
    names = ", then ".join(s.name for s in chain)
    return (f"{store}: all {len(molecules)} molecules failed with {names} ({count} of them: {reason}, e.g. molecule "
            f"{example.index} ({example.source_id})); nothing was written; {_advice(molecules, last, chain)}")


def _advice(molecules: list[StoredMolecule], last: list[dict], chain: list[Scheme]) -> str:
    has_gfn2 = any(s.name == "gfn2" for s in chain)
    without_smiles = sum(not m.smiles for m in molecules)
    needing = [s.name for s in chain if s.needs_smiles]
    if without_smiles and needing and not has_gfn2:
        verb = "needs" if len(needing) == 1 else "need"
        return (f"{' and '.join(needing)} {verb} SMILES, which {without_smiles} molecules lack: use `scheme` gfn2, "
                "or add `fallback` gfn2, which needs only the geometry")
    if all(f.get("retryable") for f in last):
        return "every failure timed out or crashed its process, which is not cached: run again (with a larger `timeout`)"
    if not has_gfn2:
        return "add `fallback` gfn2 (GFN2-xTB: elements up to radon, open shells, needs only the geometry)"
    return "see the reasons in the message and choose another `scheme`"
