"""Why a stage runs again: changed input content, parameters, tool versions or tnq code, and forced upstream
stages whose outputs changed or not; `tnq-data run --dry-run --json` names the reason of each stage."""

import hashlib
import json
import shutil
import subprocess
from importlib import metadata
from pathlib import Path

import pytest
import yaml

from tnq_core.errors import TnqError
from tnq_core.progress import Reporter
from tnq_data.pipeline import load_pipeline, plan, run_pipeline
from tnq_data.pipeline.state import STATE_FILE
from tnq_data.store import open_store


def _chain(base: str, spice_sha256: str, **spice_changes) -> dict:
    return {"name": "fetched", "stages": [
        {"name": "download", "kind": "fetch", "dataset": "qmspin", "url": base + "qmspin.tar.gz"},
        {"name": "carbenes", "kind": "curate_qmspin", "input": "download"},
        {"name": "spice-file", "kind": "fetch", "dataset": "spice", "url": base + "spice.hdf5", "sha256": spice_sha256},
        {"name": "spice", "kind": "curate_spice", "input": "spice-file", "max_force": 15.0, **spice_changes},
        {"name": "spice-q", "kind": "charges", "input": "spice", "scheme": "gasteiger", "fallback": ["formal"]},
    ]}


class Chain:
    """A pipeline file of `_chain`, its work directory, and runs that report which stages ran and why."""

    def __init__(self, tmp_path: Path, served: tuple[Path, str], sample_files: dict[str, Path]) -> None:
        folder, self.base = served
        shutil.copy(sample_files["qmspin"], folder / "qmspin.tar.gz")
        shutil.copy(sample_files["spice"], folder / "spice.hdf5")
        self.served, self.sample_files = folder, sample_files
        self.sha256 = hashlib.sha256(sample_files["spice"].read_bytes()).hexdigest()
        self.path, self.workdir = tmp_path / "chain.yaml", tmp_path / "work"
        self.write()

    def write(self, **spice_changes) -> None:
        self.path.write_text(yaml.safe_dump(_chain(self.base, self.sha256, **spice_changes)))

    def run(self, *force: str) -> tuple[dict, dict[str, str]]:
        """The final state and, for each stage that ran, why."""
        lines: list[str] = []
        state = run_pipeline(load_pipeline(self.path), self.workdir, force=force, reporter=Reporter(lines.append))
        ran = {line.split()[1].rstrip(":"): line.split(" running ", 1)[1] for line in lines if " running " in line}
        return state, ran

    def dry_run(self, *force: str) -> dict[str, tuple[str, list[str]]]:
        """stage -> (action, reasons) as `tnq-data run --dry-run --json` prints them."""
        args = [arg for name in force for arg in ("--force", name)]
        done = subprocess.run(["tnq-data", "run", str(self.path), "--workdir", str(self.workdir), "--dry-run", "--json", *args],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return {row["stage"]: (row["action"], row["reasons"]) for row in json.loads(done.stdout)["plan"]}

    def edit_state(self, stage: str, part: str, value) -> None:
        path = self.workdir / STATE_FILE
        state = json.loads(path.read_text())
        fingerprint = state["stages"][stage]["fingerprint"]
        fingerprint[part] = value(fingerprint[part]) if callable(value) else value
        path.write_text(json.dumps(state))


@pytest.fixture
def chain(tmp_path, served, sample_files) -> Chain:
    made = Chain(tmp_path, served, sample_files)
    state, ran = made.run()
    assert list(ran) == ["download", "carbenes", "spice-file", "spice", "spice-q"]
    made.first = state
    return made


def test_forced_upstream_reruns_dependents_only_when_its_outputs_changed(chain):
    _, ran = chain.run("download", "spice")
    assert ran == {"download": "fetch (forced)", "spice": "curate_spice (forced)"}, "same file, same version: no dependent runs"
    charged = chain.first["spice-q"]["outputs"]
    assert open_store(charged["store"], charged["version"]).columns, "the kept store still holds the charges version"

    carbenes = open_store(chain.first["carbenes"]["outputs"]["store"]).n_molecules
    shutil.copy(chain.sample_files["qmspin-other"], chain.served / "qmspin.tar.gz")   # the server's file changed
    assert chain.run()[1] == {}, "unforced, an up-to-date fetch is not repeated"
    planned = chain.dry_run("download")
    assert planned["download"] == ("run", ["forced"])
    assert planned["carbenes"][0] == "check" and "download" in planned["carbenes"][1][0]
    state, ran = chain.run("download")
    assert list(ran) == ["download", "carbenes"]
    assert ran["carbenes"].startswith("curate_qmspin (input download changed (xxh3:")
    assert state["carbenes"]["outputs"]["version"] != chain.first["carbenes"]["outputs"]["version"]
    assert open_store(state["carbenes"]["outputs"]["store"]).n_molecules > carbenes


def test_changed_input_content_reruns_the_stage_that_reads_it(tmp_path, sample_files):
    path, workdir = tmp_path / "made.yaml", tmp_path / "work"
    path.write_text(yaml.safe_dump({"name": "made", "stages": [
        {"name": "sample", "kind": "sample", "spice_conformers": 1, "qmspin_carbenes": 2},
        {"name": "carbenes", "kind": "curate_qmspin", "input": "sample.qmspin"}]}))
    first = run_pipeline(load_pipeline(path), workdir)
    shutil.copy(sample_files["qmspin-other"], first["sample"]["outputs"]["files"]["qmspin"])   # someone replaced it
    planned = {row.stage.name: row for row in plan(load_pipeline(path), workdir)}
    assert planned["sample"].action == "skip"
    assert planned["carbenes"].run and planned["carbenes"].reason.startswith("input sample.qmspin changed (xxh3:")
    lines: list[str] = []
    state = run_pipeline(load_pipeline(path), workdir, reporter=Reporter(lines.append))
    assert [line.split()[1] for line in lines if " running " in line] == ["carbenes:"]
    assert state["carbenes"]["outputs"]["version"] != first["carbenes"]["outputs"]["version"]


def test_a_changed_download_is_reported_and_refused_with_the_previous_store_kept(chain):
    fetched = Path(chain.first["download"]["outputs"]["file"])
    shutil.copy(chain.sample_files["qmspin-other"], fetched)       # the raw file no longer is what was fetched
    planned = chain.dry_run()
    assert planned["download"] == ("skip", ["up to date"])
    assert planned["carbenes"][0] == "run" and planned["carbenes"][1][0].startswith("input download changed")
    with pytest.raises(TnqError, match=r"^stage carbenes: .*QMspin_Part1\.tar\.gz.* changed since"):
        chain.run()
    kept = chain.first["carbenes"]["outputs"]
    assert open_store(kept["store"]).version == kept["version"]


def test_changed_parameters_rerun_the_stage_and_dependents_whose_input_changed(chain):
    chain.write(elements=["H", "C", "N", "O"])      # drops the sample's CF and CS
    planned = chain.dry_run()
    assert planned["spice"] == ("run", ["parameters changed (elements)"])
    assert planned["spice-q"][0] == "check"
    state, ran = chain.run()
    assert list(ran) == ["spice", "spice-q"]
    assert ran["spice-q"].startswith(f"charges (input spice changed ({chain.first['spice']['outputs']['version'][:12]} -> ")
    store = open_store(state["spice-q"]["outputs"]["store"])
    assert store.version == state["spice-q"]["outputs"]["version"] and "charges/gasteiger" in store.columns
    assert not set(store.column("z").tolist()) & {9, 16}


def test_recorded_tool_versions_or_code_revision_from_another_install_rerun_the_stage(chain):
    chain.edit_state("spice-q", "tools", lambda tools: {**tools, "rdkit": "2000.1.1"})
    chain.edit_state("carbenes", "code", "0" * 16)
    planned = chain.dry_run()
    assert planned["spice-q"] == ("run", [f"tool versions changed (rdkit 2000.1.1 -> {metadata.version('rdkit')})"])
    assert planned["carbenes"][0] == "run" and planned["carbenes"][1][0].startswith("tnq code changed (revision 000000000000 -> ")
    assert {name for name, (action, _) in planned.items() if action == "skip"} == {"download", "spice-file", "spice"}
    state, ran = chain.run()
    assert list(ran) == ["carbenes", "spice-q"]
    assert state["spice-q"]["outputs"] == chain.first["spice-q"]["outputs"], "same tools in fact: same version id"
    assert all(row.action == "skip" for row in plan(load_pipeline(chain.path), chain.workdir))
