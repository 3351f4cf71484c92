"""Charges throughput, in one run: AM1-BCC molecules/s with 1 and 2 workers (cold caches), the cost of a fully
cached re-run, GFN2 with and without `--timeout` (the sandbox child), and NAGL batched against one call per
molecule.

    python bench/bench_charges.py [--molecules 30]

Workers run in an already started local cluster (`--scheduler`), so cluster start-up is not timed.
"""

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from rdkit import Chem
from rdkit.Chem import AllChem

from tnq_data.charges import compute_charges
from tnq_data.parallel import dask_client
from tnq_data.store import MoleculeBatch, write_store

#: Drug-like molecules (neutral and charged), H, C, N, O, F, S, Cl only.
DRUGS = [
    "CC(=O)Oc1ccccc1C(=O)O", "CC(C)Cc1ccc(cc1)C(C)C(=O)O", "CN1C=NC2=C1C(=O)N(C(=O)N2C)C", "CC(=O)Nc1ccc(O)cc1",
    "COc1ccc2cc(ccc2c1)C(C)C(=O)O", "CNCCC(Oc1ccc(cc1)C(F)(F)F)c1ccccc1", "OC(=O)Cc1ccccc1Nc1c(Cl)cccc1Cl",
    "CC(C)NCC(O)COc1cccc2ccccc12", "CN(C)CCCN1c2ccccc2CCc2ccccc12", "Clc1ccc(cc1)C(c1ccccc1)N1CCNCC1",
    "CC1=C(C(=O)OC)C(c2ccccc2[N+](=O)[O-])C(C(=O)OC)=C1C", "NC(=O)c1cccnc1", "OC(=O)c1ccccc1O",
    "CC(C)(C)NCC(O)c1ccc(O)c(CO)c1", "CCN(CC)CC(=O)Nc1c(C)cccc1C", "O=C(O)CCCc1ccc(N(CCCl)CCCl)cc1",
    "CC[NH+](CC)CC(=O)Nc1c(C)cccc1C", "CC(=O)[O-]", "C[NH3+]", "OCC1OC(O)C(O)C(O)C1O",
    "CS(=O)(=O)Nc1ccc(cc1)[N+](=O)[O-]", "c1ccc2c(c1)[nH]c1ccccc12", "CC(C)c1ccc(cc1)C(C)C", "FC(F)(F)c1ccccc1",
    "O=C1NC(=O)C(N1)(c1ccccc1)c1ccccc1", "CCOC(=O)c1ccc(N)cc1", "CC(C)(C)c1ccc(O)cc1", "NS(=O)(=O)c1ccc(N)cc1",
    "OC(=O)C=Cc1ccccc1", "CCCCCCCC(=O)[O-]", "Cc1ccccc1NC(=O)C(C)NCCC", "COc1ccccc1OCC(O)CO",
]


def drug_store(path: Path, smiles: list[str]) -> Path:
    """A store of `smiles`, one RDKit-embedded conformer each, atoms in RDKit order with explicit H."""
    mols = []
    for s in smiles:
        mol = Chem.AddHs(Chem.MolFromSmiles(s))
        AllChem.EmbedMolecule(mol, randomSeed=11)
        mols.append(mol)
    n_atoms = np.array([m.GetNumAtoms() for m in mols], dtype=np.int64)
    batch = MoleculeBatch(
        molecule={"smiles": np.array(smiles, dtype=object), "subset": np.array(["bench"] * len(mols), dtype=object),
                  "source_id": np.array([f"drug{i}" for i in range(len(mols))], dtype=object),
                  "n_conformers": np.ones(len(mols), dtype=np.int64)},
        conformer={"energy": np.zeros(len(mols)), "n_atoms": n_atoms,
                   "total_charge": np.array([Chem.GetFormalCharge(m) for m in mols], dtype=np.int8),
                   "multiplicity": np.ones(len(mols), dtype=np.int8)},
        atom={"z": np.concatenate([[a.GetAtomicNum() for a in m.GetAtoms()] for m in mols]).astype(np.uint8),
              "pos": np.concatenate([m.GetConformer().GetPositions() for m in mols]).astype(np.float32)},
    )
    write_store(path, [batch], provenance={"command": "bench", "parameters": {}, "inputs": []})
    return path


def timed_run(store: Path, scheme: str, cache: Path, scheduler: str | None,
              timeout: float | None = None) -> tuple[float, str]:
    start = time.perf_counter()
    vid = compute_charges(store, scheme, cache_dir=cache, scheduler=scheduler, timeout=timeout)
    return time.perf_counter() - start, vid


def sandbox_cost(root: Path, smiles: list[str]) -> str:
    """GFN2 on one worker with and without `timeout` (cold caches): the cost of the sandbox child."""
    seconds = {}
    with dask_client(1) as client:
        for timeout in (None, 600.0):
            store = drug_store(root / f"gfn2-{timeout}", smiles)
            seconds[timeout], _ = timed_run(store, "gfn2", root / f"gfn2-cache-{timeout}", client.scheduler.address,
                                            timeout)
    return (f"GFN2, 1 worker, {len(smiles)} molecules: {seconds[None]:.1f} s without --timeout, "
            f"{seconds[600.0]:.1f} s with it (child start, warm-up and one round trip per molecule: "
            f"{seconds[600.0] - seconds[None]:+.1f} s)")


def nagl_rates(smiles: list[str]) -> str:
    try:
        from tnq_data.charges.nagl import Nagl, _openff_molecule, load_model
        Nagl().check_available()
    except Exception as err:  # noqa: BLE001  report why, do not fail the bench
        return f"NAGL unavailable: {err}"
    from tnq_data.charges.base import ChargeUnit

    units = []
    for s in smiles:
        mol = Chem.AddHs(Chem.MolFromSmiles(s))
        units.append(ChargeUnit(s, np.array([a.GetAtomicNum() for a in mol.GetAtoms()]), Chem.GetFormalCharge(mol), 1))
    scheme, model = Nagl(), load_model()
    molecules = [_openff_molecule(u) for u in units]
    start = time.perf_counter()
    for molecule in molecules:
        model.compute_property(molecule, readout_name="am1bcc_charges")
    single = len(units) / (time.perf_counter() - start)
    start = time.perf_counter()
    results = scheme.compute_many(units)
    batched = len(units) / (time.perf_counter() - start)
    assert not any(isinstance(r, Exception) for r in results)
    return (f"NAGL: {batched:.1f} molecules/s batched (one batch of {len(units)}, incl. featurisation) vs "
            f"{single:.1f} molecules/s with one compute_property call per molecule ({batched / single:.2f}x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--molecules", type=int, default=len(DRUGS))
    args = parser.parse_args()
    smiles = DRUGS[:args.molecules]
    warnings.simplefilter("ignore")
    with tempfile.TemporaryDirectory(prefix="tnq-bench-charges-") as tmp:
        root = Path(tmp)
        rates, vids = {}, set()
        for workers in (1, 2):
            store = drug_store(root / f"store{workers}", smiles)
            with dask_client(workers) as client:
                seconds, vid = timed_run(store, "am1bcc", root / f"cache{workers}", client.scheduler.address)
            rates[workers], first = len(smiles) / seconds, seconds
            vids.add(vid)
            print(f"AM1-BCC, {workers} worker(s), cold cache: {len(smiles)} molecules in {seconds:.1f} s, "
                  f"{rates[workers]:.2f} molecules/s")
        print(f"speed-up 2 vs 1 workers: {rates[2] / rates[1]:.2f}x (target >= 1.7); same version: {len(vids) == 1}")
        cached, _ = timed_run(root / "store2", "am1bcc", root / "cache2", None)
        print(f"fully cached re-run: {cached:.2f} s = {100 * cached / first:.1f}% of the first run (target < 5%)")
        print(sandbox_cost(root, smiles))
    print(nagl_rates(smiles))


if __name__ == "__main__":
    main()
