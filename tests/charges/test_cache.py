"""The charge cache: verified entries, atomic files, and hits across atom orders and stores."""

import numpy as np
import pytest
from rdkit import Chem

from tnq_data.charges import compute_charges
from tnq_data.charges.cache import ChargeCache, Entry, cache_key
from tnq_data.store import open_store


def test_entries_round_trip_and_corruption_is_never_trusted(tmp_path, entry_files):
    cache = ChargeCache(tmp_path)
    key = cache_key("am1bcc", "1", {}, {"ambertools": "24.8"}, "CCO", 0, 1)
    charges = np.array([-0.1, 0.2, -0.6, 0.05, 0.05, 0.05, 0.05, 0.05, 0.25])
    cache.put(key, Entry(charges), 9)
    assert np.array_equal(cache.get(key, 9).charges, charges)
    [path] = entry_files(tmp_path)
    assert cache.get(key, 8) is None and not path.exists()  # not an entry for this molecule: dropped

    cache.put(key, Entry(charges), 9)
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x40  # one flipped bit in the charges
    path.write_bytes(bytes(data))
    assert cache.get(key, 9) is None and cache.corrupt == 2 and not path.exists()

    cache.put(key, Entry(None, "radical"), 9)
    path.write_bytes(path.read_bytes()[:-1])  # a torn write
    assert cache.get(key, 9) is None and cache.corrupt == 3
    cache.put(key, Entry(None, "radical"), 9)
    assert cache.get(key, 9).reason == "radical" and cache.hits == 2 and cache.misses == 3
    assert not list(tmp_path.rglob(".tmp-*"))


def test_keys_separate_schemes_states_geometries_and_tool_versions():
    positions = np.random.default_rng(0).normal(size=(3, 3))
    tools = {"tblite": "0.4.0"}
    base = cache_key("gfn2", "1", {}, tools, "[CH2]", 0, 3, positions)
    assert base == cache_key("gfn2", "1", {}, tools, "[CH2]", 0, 3, positions + 1e-7)  # below the rounding
    others = {cache_key("gfn2", "1", {}, tools, "[CH2]", 0, 1, positions),
              cache_key("gfn2", "2", {}, tools, "[CH2]", 0, 3, positions),
              cache_key("gfn2", "1", {}, {"tblite": "0.5.0"}, "[CH2]", 0, 3, positions),
              cache_key("gfn2", "1", {}, tools, "[CH2]", 0, 3, positions + 1e-3),
              cache_key("gfn2", "1", {}, tools, "[CH2]", 0, 3),
              cache_key("mbis", "1", {"basis": "def2-svp"}, tools, "[CH2]", 0, 3, positions)}
    assert base not in others and len(others) == 6


def test_each_scheme_keys_the_versions_of_the_tools_it_runs():
    from importlib import metadata

    from tnq_data.charges.registry import get_scheme

    rdkit = metadata.version("rdkit")
    assert get_scheme("gasteiger").tools() == {"rdkit": rdkit} == get_scheme("mmff94").tools()
    assert get_scheme("gfn2").tools() == {"tblite": metadata.version("tblite")}
    assert get_scheme("formal").tools() == {} and get_scheme("mbis").tools() == {}
    am1bcc = get_scheme("am1bcc").tools()
    assert set(am1bcc) == {"ambertools", "openff-toolkit", "rdkit"} and am1bcc["rdkit"] == rdkit
    import openff.toolkit

    assert am1bcc["openff-toolkit"] == openff.toolkit.__version__


def permuted_mapped_smiles(smiles: str, permutation: np.ndarray) -> str:
    """`smiles` with map numbers so that new atom i is old atom permutation[i]."""
    params = Chem.SmilesParserParams()
    params.removeHs = False
    mol = Chem.MolFromSmiles(smiles, params)
    order = np.argsort([a.GetAtomMapNum() for a in mol.GetAtoms()])
    for new, old in enumerate(permutation):
        mol.GetAtomWithIdx(int(order[old])).SetAtomMapNum(new + 1)
    return Chem.MolToSmiles(mol)


@pytest.mark.parametrize("scheme", ["gasteiger", "am1bcc"])
def test_another_atom_order_hits_the_cache_and_maps_back(tmp_path, cache_dir, embed, store_factory, entry_files,
                                                         scheme):
    _, write_molecules = store_factory
    ethanol = "[C:1]([C:2]([O:3][H:9])([H:7])[H:8])([H:4])([H:5])[H:6]"
    z, positions = embed(ethanol, 1)
    permutation = np.array([8, 2, 5, 0, 7, 1, 4, 3, 6])
    reordered = permuted_mapped_smiles(ethanol, permutation)
    first = write_molecules(tmp_path / "a", [(ethanol, z, positions, 0, 1)])
    second = write_molecules(tmp_path / "b", [(reordered, z[permutation], positions[:, permutation], 0, 1)])

    compute_charges(first, scheme, cache_dir=cache_dir)
    files = {p: p.stat().st_mtime_ns for p in entry_files(cache_dir)}
    compute_charges(second, scheme, cache_dir=cache_dir)
    assert {p: p.stat().st_mtime_ns for p in entry_files(cache_dir)} == files  # a hit: nothing computed

    q_first = open_store(first).column(f"charges/{scheme}")
    q_second = open_store(second).column(f"charges/{scheme}")
    assert np.allclose(q_second, q_first[permutation], atol=1e-6)
