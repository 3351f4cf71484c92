"""The GFN2-xTB store of the training tests: the same geometries as neutral singlet, cation doublet, anion doublet
and neutral triplet (`tnq_data.sample_states`). As a script: `python xtb_data.py STORE N_GEOMETRIES`."""

import sys
from pathlib import Path

from tnq_data.sample_states import write_states_store

SMILES = ("O", "N", "C", "CO", "C=O", "CC=O", "CCO", "CN", "C=C", "CC", "OO", "CCC", "C#C", "CCCC", "CC#N", "NC=O",
          "OC=O", "CCN", "COC", "CC(C)=O")
#: Gaussian displacement (Å) of every coordinate from the MMFF minimum; larger than the module default.
SIGMA = 0.08


def write_xtb_store(path: Path | str, count: int) -> str:
    """Write the store (one molecule per SMILES, `count` geometries each, small shards); returns its version."""
    return write_states_store(path, SMILES, count, sigma=SIGMA, shard_bytes=20_000)


if __name__ == "__main__":
    write_xtb_store(sys.argv[1], int(sys.argv[2]))
