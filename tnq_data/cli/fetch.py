"""`tnq-data fetch spice|qmspin`: download a published dataset release, checksummed and resumable."""

from pathlib import Path
from typing import Annotated

import typer

from tnq_data.cli.app import app, reporter
from tnq_data.sources.archive import extract_dir, safe_extract
from tnq_data.sources.catalog import DEFAULT_VERSIONS, versions
from tnq_data.sources.checksums import downloaded_input
from tnq_data.sources.download import fetch_dataset

fetch_app = typer.Typer(
    help="Download raw datasets: resumable, verified against pinned checksums before they appear.",
    no_args_is_help=True,
)
app.add_typer(fetch_app, name="fetch")

Dest = Annotated[Path, typer.Option("--dest", help="Folder to download into.")]
Url = Annotated[str | None, typer.Option("--url", help="Download from this address instead (a mirror).")]
Md5 = Annotated[str | None, typer.Option("--md5", help="Expected md5, replacing the pinned checksum.")]
Sha256 = Annotated[str | None, typer.Option("--sha256", help="Expected sha256, replacing the pinned checksum.")]
Size = Annotated[int | None, typer.Option("--size", min=0, help="Expected size in bytes, replacing the pinned one.")]


@fetch_app.command("spice")
def spice(
    version: Annotated[str | None, typer.Option(
        "--version", help=f"SPICE release: {' or '.join(versions('spice'))} (default {DEFAULT_VERSIONS['spice']}).",
    )] = None,
    dest: Dest = Path("data/raw"),
    url: Url = None,
    md5: Md5 = None,
    sha256: Sha256 = None,
    size: Size = None,
) -> None:
    """Download the SPICE HDF5 file from Zenodo."""
    path = fetch_dataset("spice", dest, version=version, url=url, md5=md5, sha256=sha256, size=size,
                         reporter=reporter())
    typer.echo(path)


@fetch_app.command("qmspin")
def qmspin(
    dest: Dest = Path("data/raw"),
    url: Url = None,
    md5: Md5 = None,
    sha256: Sha256 = None,
    size: Size = None,
    extract: Annotated[bool, typer.Option(
        "--extract/--no-extract", help="Also unpack the archive (safely) next to it.",
    )] = False,
) -> None:
    """Download the QMspin archive from the Materials Cloud Archive."""
    path = fetch_dataset("qmspin", dest, url=url, md5=md5, sha256=sha256, size=size, reporter=reporter())
    typer.echo(path)
    if extract:
        folder = extract_dir(path)
        if folder.exists():
            typer.echo(f"{folder} already exists; not extracting again", err=True)
        else:
            safe_extract(path, folder, source=downloaded_input(path))
        typer.echo(folder)
