"""Sharded, versioned zarr stores of conformers (see docs/store-format.md)."""

from tnq_data.store.arrays import DamagedArray
from tnq_data.store.format import Column, MoleculeBatch
from tnq_data.store.manifest import set_head
from tnq_data.store.reader import Shard, Store, open_store
from tnq_data.store.writer import DEFAULT_SHARD_BYTES, StoreWriter, add_columns, write_store

__all__ = ["Column", "DEFAULT_SHARD_BYTES", "DamagedArray", "MoleculeBatch", "Shard", "Store", "StoreWriter", "add_columns",
           "open_store", "set_head", "write_store"]
