"""`tnq-data export STORE --format extxyz|torchmd-hdf5|asedb --out PATH [--split S --run RUN]`."""

from pathlib import Path

import typer

from tnq_core.cli import output_console, print_json
from tnq_data.cli.app import app, reporter


@app.command()
def export(
    store: Path = typer.Argument(..., help="Store directory."),
    format: str = typer.Option(..., "--format", help="extxyz (MACE), torchmd-hdf5 (torchmd-net's HDF5 class) or "
                                                      "asedb (.aselmdb/.lmdb for fairchem, or SQLite .db)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output file (written under a temporary name, then renamed)."),
    split: str | None = typer.Option(None, help="train, val or test: only the molecules of this split of --run."),
    run: Path | None = typer.Option(None, help="Run directory of tnq-train whose split to export (on the store "
                                               "version it trained on)."),
    force: bool = typer.Option(False, "--force", help="Replace --out if it exists (only once the export succeeds)."),
    energy_key: str | None = typer.Option(None, help="extxyz: info key of the energy (eV) [REF_energy]."),
    forces_key: str | None = typer.Option(None, help="extxyz: per-atom key of the forces (eV/Å) [REF_forces]."),
    charge_key: str | None = typer.Option(None, help="extxyz: info key of the total charge (e) [total_charge]."),
    spin_key: str | None = typer.Option(None, help="extxyz: info key of the multiplicity 2S+1 [total_spin]."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Export a store, or one split of a training run, for MACE, torchmd-net or fairchem (docs/interop.md)."""
    from tnq_data.export import ExtxyzKeys, export_store

    given = {name: value for name, value in (("energy_key", energy_key), ("forces_key", forces_key),
                                             ("charge_key", charge_key), ("spin_key", spin_key)) if value is not None}
    summary = export_store(store, format, out, split=split, run=run, keys=ExtxyzKeys(**given) if given else None,
                           force=force, reporter=reporter())
    if as_json:
        print_json(summary)
        return
    part = f" (split {summary['split']} of {run})" if summary["split"] else ""
    output_console().print(f"{summary['out']}: {summary['conformers']:,} conformers of {store} @ "
                           f"{summary['store_version']}{part} as {summary['format']}")
