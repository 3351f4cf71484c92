"""`tnq-data curate spice|qmspin` and `tnq-data import xyz|asedb`: parse arguments, call the library, print the counts."""

from pathlib import Path

import typer
from rich.table import Table

from tnq_core.cli import output_console
from tnq_data.cli.app import app, reporter

curate_app = typer.Typer(help="Curate a published dataset into a store.", no_args_is_help=True)
import_app = typer.Typer(help="Import files of a generic format into a store.", no_args_is_help=True)
app.add_typer(curate_app, name="curate")
app.add_typer(import_app, name="import")

OUT = typer.Option(..., "--out", "-o", help="Store directory (created, or a new version of an existing store).")


def _split(values: str | None) -> list[str] | None:
    return None if values is None else [v.strip() for v in values.split(",") if v.strip()]


def print_summary(out: Path, version: str) -> None:
    """Print the store's `curation` table (drops by reason, then kept) and its new version id, on stdout."""
    from tnq_data.store import open_store

    table = Table(title=f"{out} @ {version}")
    for column in ("reason", "molecules", "conformers"):
        table.add_column(column, justify="left" if column == "reason" else "right")
    for row in open_store(out, version=version).tables.get("curation", []):
        table.add_row(row["reason"], str(row["molecules"]), str(row["conformers"]),
                      style="bold" if row["reason"] == "kept" else None)
    output_console().print(table)


@curate_app.command("spice")
def spice(
    hdf5: Path = typer.Argument(..., help="SPICE HDF5 file (e.g. SPICE-2.0.1.hdf5)."),
    out: Path = OUT,
    subset: str | None = typer.Option(None, help="Keep subsets whose name matches this regex (default: all)."),
    elements: str | None = typer.Option(None, help="Comma-separated element symbols to allow, e.g. H,C,N,O."),
    max_force: float | None = typer.Option(None, help="Drop conformers with a per-atom force norm above this (eV/Å)."),
    workers: int = typer.Option(1, min=1, help="Local dask worker processes (1: in-process)."),
    scheduler: str | None = typer.Option(None, help="Address of a running dask scheduler, e.g. tcp://host:8786."),
) -> None:
    """Curate a SPICE HDF5 file: convert to Å/eV/e, derive charge and multiplicity from the SMILES, filter."""
    from tnq_data.sources.spice import curate_spice

    version = curate_spice(hdf5, out, subset=subset, elements=_split(elements), max_force=max_force, workers=workers,
                           scheduler=scheduler, reporter=reporter())
    print_summary(out, version)


@curate_app.command("qmspin")
def qmspin(
    source: Path = typer.Argument(..., help="QMspin Part 1 folder or archive (.tar.gz, .zip)."),
    out: Path = OUT,
) -> None:
    """Curate QMspin Part 1 carbenes: singlet and triplet of a carbene form one molecule."""
    from tnq_data.sources.qmspin import curate_qmspin

    print_summary(out, curate_qmspin(source, out, reporter=reporter()))


@import_app.command("xyz")
def xyz(
    files: list[Path] = typer.Argument(..., help="Extended XYZ files (energies in eV, forces in eV/Å)."),
    out: Path = OUT,
    charge_key: str = typer.Option("charge", help="Info key of the total charge (e)."),
    spin_key: str = typer.Option("multiplicity", help="Info key of the multiplicity 2S+1."),
    energy_key: str = typer.Option("energy", help="Info key of the energy (eV)."),
    forces_key: str = typer.Option("forces", help="Per-atom key of the forces (eV/Å)."),
    molecule_key: str | None = typer.Option(None, help="Info key whose equal values make one molecule."),
    default_charge: int | None = typer.Option(None, help="Charge of frames without the charge key (else an error)."),
    default_multiplicity: int | None = typer.Option(None, help="Multiplicity of frames without the spin key (else an error)."),
) -> None:
    """Import extended XYZ frames with per-frame charge and multiplicity."""
    from tnq_data.sources.extxyz import import_xyz

    version = import_xyz(files, out, charge_key=charge_key, spin_key=spin_key, energy_key=energy_key,
                         forces_key=forces_key, molecule_key=molecule_key, default_charge=default_charge,
                         default_multiplicity=default_multiplicity, reporter=reporter())
    print_summary(out, version)


@import_app.command("asedb")
def asedb(
    paths: list[Path] = typer.Argument(..., help="ASE databases: SQLite .db, .aselmdb/.lmdb (fairchem, OMol25), "
                                                 "folders of them or archives (.tar.gz, .zip)."),
    out: Path = OUT,
    charge_key: str = typer.Option("charge", help="Key of the total charge (e), in the row's data or key-value pairs."),
    spin_key: str = typer.Option("spin", help="Key of the spin, read as the multiplicity 2S+1 (as fairchem does)."),
    energy_key: str = typer.Option("energy", help="Calculator result or data key of the energy (eV)."),
    forces_key: str = typer.Option("forces", help="Calculator result or data key of the forces (eV/Å)."),
    charges_key: list[str] = typer.Option([], help="KEY=SCHEME: per-atom charges (e) in KEY stored as "
                                                   "charges/SCHEME, e.g. lowdin_charges=lowdin; repeatable."),
    molecule_key: str | None = typer.Option(None, help="Key whose equal values make one molecule (default: one per row)."),
    default_charge: int | None = typer.Option(None, help="Charge of rows without the charge key (else an error)."),
    default_multiplicity: int | None = typer.Option(None, help="Multiplicity of rows without the spin key (else an error)."),
    workers: int = typer.Option(1, min=1, help="Local dask worker processes (1: in-process)."),
    scheduler: str | None = typer.Option(None, help="Address of a running dask scheduler, e.g. tcp://host:8786."),
) -> None:
    """Import ASE database rows (eV, Å) with per-row charge and multiplicity, streaming in bounded memory."""
    from tnq_data.sources.asedb import import_asedb

    version = import_asedb(paths, out, charge_key=charge_key, spin_key=spin_key, energy_key=energy_key,
                           forces_key=forces_key, charges_key=charges_key, molecule_key=molecule_key,
                           default_charge=default_charge, default_multiplicity=default_multiplicity,
                           workers=workers, scheduler=scheduler, reporter=reporter())
    print_summary(out, version)
