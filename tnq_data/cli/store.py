"""`tnq-data info | verify | log | diff`: look at stores and their versions."""

import json
from pathlib import Path

import typer

from tnq_core.cli import output_console, print_json, whole_table
from tnq_data.cli.app import app
from tnq_data.store.summary import store_diff, store_info, store_log
from tnq_data.store.verify import verify_store

out = output_console()
STORE = typer.Argument(..., help="Store directory.")
JSON = typer.Option(False, "--json", help="Print JSON instead of a table.")


@app.command()
def info(store: Path = STORE, version: str = typer.Option(None, "--version", help="A version id (default HEAD)."),
         as_json: bool = JSON) -> None:
    """Summarise a store version: counts, columns, shards, tables, provenance."""
    document = store_info(store, version)
    if as_json:
        print_json(document)
        return
    out.print(f"[bold]{document['path']}[/bold]  version {document['version']}  (parent {document['parent'] or '-'})")
    out.print(f"{document['n_molecules']:,} molecules, {document['n_conformers']:,} conformers, "
              f"{document['n_atoms']:,} atoms in {document['shards']} shard(s), {document['bytes_on_disk'] / 2**20:.1f} MiB")
    table = whole_table("column", "axis", "dtype", "shape", "unit")
    for column in document["arrays"]:
        table.add_row(column["name"], column["axis"], column["dtype"], str(tuple(column["shape"])), column["unit"] or "")
    out.print(table)
    for name, rows in document["tables"].items():
        out.print(f"table {name}: {len(rows)} row(s)")
    prov = document["provenance"]
    out.print(f"made by: {prov.get('command')} {json.dumps(prov.get('parameters', {}), sort_keys=True)} at {prov.get('created')}")


@app.command()
def verify(store: Path = STORE, all_versions: bool = typer.Option(False, "--all", help="Verify every version, not only HEAD."),
           as_json: bool = JSON) -> None:
    """Re-hash every array against the manifest; exit 1 naming each damaged or missing file."""
    versions, problems = verify_store(store, all_versions)
    if as_json:
        print_json({"store": str(store), "versions": versions, "ok": not problems, "problems": problems})
    else:
        for problem in problems:
            out.print(f"[red]{problem}[/red]")
        if not problems:
            out.print(f"{store}: {len(versions)} version(s) verified, all arrays match their hashes")
    if problems:
        raise typer.Exit(1)


@app.command()
def log(store: Path = STORE, as_json: bool = JSON) -> None:
    """List the versions of a store, newest first, with the command that made each."""
    entries = store_log(store)
    if as_json:
        print_json(entries)
        return
    table = whole_table("version", "created", "command", "molecules", "conformers", "changed columns")
    for entry in entries:
        table.add_row(entry["version"], entry["created"] or "", entry["command"] or "",
                      f"{entry['counts']['molecule']:,}", f"{entry['counts']['conformer']:,}",
                      ", ".join(entry["changed_columns"]) or ("(first version)" if entry["parent"] is None else ""))
    out.print(table)


@app.command()
def diff(store_a: str = typer.Argument(..., help="STORE or STORE@VERSION."),
         store_b: str = typer.Argument(..., help="STORE or STORE@VERSION."), as_json: bool = JSON) -> None:
    """Summarise what differs between two store versions: counts, columns, tables, parameters."""
    document = store_diff(store_a, store_b)
    if as_json:
        print_json(document)
        return
    if document["identical"]:
        out.print(f"identical: both are version {document['a']}")
        return
    out.print(f"a = {document['a']} ({document['commands'][0]}), b = {document['b']} ({document['commands'][1]})")
    for axis, (count_a, count_b) in document["counts"].items():
        out.print(f"{axis}s: {count_a:,} -> {count_b:,}")
    for key, label in (("columns_only_in_a", "only in a"), ("columns_only_in_b", "only in b"),
                       ("columns_changed", "changed"), ("tables_changed", "tables changed")):
        if document[key]:
            out.print(f"{label}: {', '.join(document[key])}")
    for name, (value_a, value_b) in document["parameters_changed"].items():
        out.print(f"parameter {name}: {value_a!r} -> {value_b!r}")
