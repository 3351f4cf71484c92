"""The stage kinds of the data package: sample, fetch, curate_spice, curate_qmspin, import_asedb and charges.

Each takes the stage and the `Context` and returns the stage's outputs (paths as strings, version ids).
"""

from collections.abc import Callable
from pathlib import Path

from tnq_data.pipeline.context import Context


def _sample(stage, ctx: Context) -> dict:
    from tnq_data.sample import QMSPIN_SAMPLE_NAME, SPICE_SAMPLE_NAME, make_qmspin_sample, make_spice_sample

    folder = ctx.staging("raw")
    spice = make_spice_sample(folder / SPICE_SAMPLE_NAME, n_conformers=stage.spice_conformers, seed=stage.seed)
    qmspin = make_qmspin_sample(folder / QMSPIN_SAMPLE_NAME, n_carbenes=stage.qmspin_carbenes, seed=stage.seed)
    return {"files": {"spice": str(spice), "qmspin": str(qmspin)}}


def _fetch(stage, ctx: Context) -> dict:
    from tnq_data.pipeline.schema import url_file_name
    from tnq_data.sources.download import download, fetch_dataset

    checks = {"md5": stage.md5, "sha256": stage.sha256, "size": stage.size, "reporter": ctx.reporter}
    if stage.dataset is None:
        return {"file": str(download(stage.url, ctx.staging("raw") / url_file_name(stage.url), **checks))}
    path = fetch_dataset(stage.dataset, ctx.staging("raw"), version=stage.version, url=stage.url, **checks)
    return {"file": str(path)}


def _curate_spice(stage, ctx: Context) -> dict:
    from tnq_data.sources.spice import curate_spice

    store = ctx.staging("stores")
    version = curate_spice(Path(ctx.resolve(stage.input)["file"]), store, subset=stage.subset, elements=stage.elements,
                           max_force=stage.max_force, workers=ctx.workers, reporter=ctx.reporter)
    return {"store": str(store), "version": version}


def _curate_qmspin(stage, ctx: Context) -> dict:
    from tnq_data.sources.qmspin import curate_qmspin

    store = ctx.staging("stores")
    version = curate_qmspin(Path(ctx.resolve(stage.input)["file"]), store, reporter=ctx.reporter)
    return {"store": str(store), "version": version}


def _import_asedb(stage, ctx: Context) -> dict:
    from tnq_data.sources.asedb import import_asedb

    store = ctx.staging("stores")
    version = import_asedb([Path(ctx.resolve(stage.input)["file"])], store, charge_key=stage.charge_key,
                           spin_key=stage.spin_key, energy_key=stage.energy_key, forces_key=stage.forces_key,
                           charges_key=stage.charges_key, molecule_key=stage.molecule_key,
                           default_charge=stage.default_charge, default_multiplicity=stage.default_multiplicity,
                           workers=ctx.workers, reporter=ctx.reporter)
    return {"store": str(store), "version": version}


def _charges(stage, ctx: Context) -> dict:
    from tnq_data.charges import compute_charges

    store = ctx.checkout(stage.input)
    version = compute_charges(store, stage.scheme, fallback=stage.fallback, per_conformer=stage.per_conformer,
                              workers=ctx.workers, timeout=stage.timeout, reporter=ctx.reporter)
    return {"store": str(store), "version": version}


EXECUTORS: dict[str, Callable[[object, Context], dict]] = {
    "sample": _sample, "fetch": _fetch, "curate_spice": _curate_spice, "curate_qmspin": _curate_qmspin,
    "import_asedb": _import_asedb, "charges": _charges,
}
