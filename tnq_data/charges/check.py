"""`check_store`: are the spin labels of a store consistent with its electron counts?"""

from pathlib import Path

import numpy as np

from tnq_data import chem
from tnq_data.store import open_store


def check_store(store: Path) -> dict:
    """Report the conformers of `store` whose multiplicity (2S+1) is impossible for their electron count.

    Returns ``{"store", "version", "conformers", "inconsistent", "rows"}``; each row has conformer, molecule,
    source_id, electrons, total_charge and multiplicity. Reads the store shard by shard.
    """
    opened = open_store(store)
    rows = []
    for shard in opened.iter_shards(["z", "total_charge", "multiplicity", "source_id"]):
        arrays = shard.arrays
        bad = np.flatnonzero(chem.inconsistent_spin(arrays["z"], arrays["atom_offset"], arrays["total_charge"],
                                                    arrays["multiplicity"]))
        conformer_offset = arrays["conformer_offset"]
        for local in bad:
            a0, a1 = arrays["atom_offset"][local], arrays["atom_offset"][local + 1]
            molecule = int(np.searchsorted(conformer_offset, local, side="right")) - 1
            charge = int(arrays["total_charge"][local])
            rows.append({"conformer": shard.first_conformer + int(local),
                         "molecule": shard.first_molecule + molecule,
                         "source_id": str(arrays["source_id"][molecule]),
                         "electrons": chem.electron_count(arrays["z"][a0:a1], charge),
                         "total_charge": charge, "multiplicity": int(arrays["multiplicity"][local])})
    return {"store": str(store), "version": opened.version, "conformers": opened.n_conformers,
            "inconsistent": len(rows), "rows": rows}
