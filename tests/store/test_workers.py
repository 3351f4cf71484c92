"""The reader in forked and spawned DataLoader workers, after the parent has used it."""

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from tnq_data.store import open_store, write_store


class Energies(Dataset):
    def __init__(self, store):
        self.store = store

    def __len__(self):
        return len(self.store)

    def __getitem__(self, index):
        record = self.store.conformer(index)
        return torch.tensor([record["energy"], float(record["pos"].sum())], dtype=torch.float64)


@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_reader_works_in_dataloader_workers(tmp_path, make_batch, context):
    write_store(tmp_path / "s", [make_batch(1, 40)], shard_bytes=2000)
    store = open_store(tmp_path / "s")
    expected = np.array([[c["energy"], c["pos"].sum()] for c in store.iter_conformers()])
    loader = DataLoader(Energies(store), batch_size=7, num_workers=2, multiprocessing_context=context, timeout=120)
    got = torch.cat(list(loader)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-6)
