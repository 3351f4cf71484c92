"""Running pipelines for real: same version ids with 1 or 2 workers, skipping, re-running what changed, --json."""

import json
import subprocess
from pathlib import Path

import yaml

from tnq_core.progress import Reporter
from tnq_data.pipeline import load_pipeline, run_pipeline
from tnq_data.store import open_store

CHAIN = {
    "name": "chain",
    "stages": [
        {"name": "sample", "kind": "sample", "spice_conformers": 2, "qmspin_carbenes": 2},
        {"name": "spice", "kind": "curate_spice", "input": "sample.spice", "max_force": 15.0},
        {"name": "spice-q", "kind": "charges", "input": "spice", "scheme": "gasteiger", "fallback": ["formal"]},
        {"name": "qmspin", "kind": "curate_qmspin", "input": "sample.qmspin"},
        {"name": "qmspin-q", "kind": "charges", "input": "qmspin", "scheme": "gfn2"},
    ],
}


def _versions(state: dict) -> dict[str, str]:
    return {name: entry["outputs"]["version"] for name, entry in state.items() if "version" in entry["outputs"]}


def test_same_version_ids_with_one_or_two_workers_and_reruns_skip(tmp_path):
    path = tmp_path / "chain.yaml"
    path.write_text(yaml.safe_dump(CHAIN))
    pipeline = load_pipeline(path)
    lines: list[str] = []
    one = run_pipeline(pipeline, tmp_path / "one", workers=1, reporter=Reporter(lines.append))
    two = run_pipeline(pipeline, tmp_path / "two", workers=2)
    assert _versions(one) == _versions(two) and len(_versions(one)) == 4
    store = open_store(one["spice-q"]["outputs"]["store"])
    assert store.version == one["spice-q"]["outputs"]["version"] and store.parent == one["spice"]["outputs"]["version"]
    assert "charges/gasteiger" in store.columns and "charges/mbis_source" in store.columns

    lines.clear()
    again = run_pipeline(pipeline, tmp_path / "one", workers=2, reporter=Reporter(lines.append))
    assert _versions(again) == _versions(one)
    assert all("skipped, up to date" in line for line in lines) and len(lines) == 5

    changed = dict(CHAIN, stages=[*CHAIN["stages"][:2], dict(CHAIN["stages"][2], scheme="formal", fallback=[]), *CHAIN["stages"][3:]])
    path.write_text(yaml.safe_dump(changed))
    lines.clear()
    rerun = run_pipeline(load_pipeline(path), tmp_path / "one", reporter=Reporter(lines.append))
    ran = [line.split(" running ")[1] for line in lines if " running " in line]
    assert ran == ["charges (parameters changed (fallback, scheme))"], lines
    assert rerun["spice"]["outputs"] == one["spice"]["outputs"] and rerun["spice-q"]["outputs"]["version"] != one["spice-q"]["outputs"]["version"]
    assert "charges/formal" in open_store(rerun["spice-q"]["outputs"]["store"]).columns

    forced = subprocess.run(["tnq-data", "run", str(path), "--workdir", str(tmp_path / "one"), "--force", "qmspin", "--json"],
                            capture_output=True, text=True, timeout=600)
    assert forced.returncode == 0, forced.stderr
    document = json.loads(forced.stdout)
    assert _versions(document["stages"]) == _versions(rerun), "a forced stage reproduces its version ids"
    assert document["pipeline"] == "chain" and document["workdir"] == str(tmp_path / "one")
    assert set(document["stages"]["qmspin"]) == {"key", "fingerprint", "outputs", "seconds"}
    assert document["stages"]["qmspin-q"]["fingerprint"]["inputs"] == {"qmspin": rerun["qmspin"]["outputs"]["version"]}
    missing = Path(rerun["qmspin-q"]["outputs"]["store"])
    dry = subprocess.run(["tnq-data", "run", str(path), "--workdir", str(tmp_path / "one"), "--dry-run"],
                         capture_output=True, text=True, timeout=120)
    assert dry.returncode == 0 and "run (" not in dry.stdout and missing.exists()
