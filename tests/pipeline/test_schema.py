"""Pipeline files are validated whole before anything runs; errors name the file, the field and the reason."""

import subprocess
from pathlib import Path

import pytest
import yaml

from tnq_core.errors import TnqError
from tnq_data.pipeline import load_pipeline, plan

REPO = Path(__file__).resolve().parents[2]
GOOD = {
    "name": "t",
    "stages": [
        {"name": "sample", "kind": "sample", "spice_conformers": 2},
        {"name": "spice", "kind": "curate_spice", "input": "sample.spice", "max_force": 10.0},
        {"name": "q", "kind": "charges", "input": "spice", "scheme": "gasteiger"},
    ],
}


def _write(tmp_path: Path, document) -> Path:
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(document) if not isinstance(document, str) else document)
    return path


@pytest.mark.parametrize("name", ["demo", "spice-pubchem", "qmspin"])
def test_shipped_pipelines_are_valid(name):
    pipeline = load_pipeline(REPO / "pipelines" / f"{name}.yaml")
    assert pipeline.name == name and pipeline.stages


@pytest.mark.parametrize("change, message", [
    (lambda d: d["stages"].append({"name": "x", "kind": "bake"}), r"stages\[3\]: Input tag 'bake' found using 'kind' does not match"),
    (lambda d: d["stages"][1].pop("input"), r"stages\[1\]\.input: Field required"),
    (lambda d: d["stages"][1].__setitem__("max_force", "strong"), r"stages\[1\]\.max_force: Input should be a valid number"),
    (lambda d: d["stages"][1].__setitem__("max_force", -1), r"stages\[1\]\.max_force: Input should be greater than 0"),
    (lambda d: d["stages"][2].__setitem__("colour", "red"), r"stages\[2\]\.colour: Extra inputs are not permitted"),
    (lambda d: d["stages"][2].__setitem__("input", "later"), r"input 'later' is not an earlier stage"),
    (lambda d: d["stages"][2].__setitem__("input", "sample"), r"input 'sample' gives a files, but a charges stage needs a store"),
    (lambda d: d["stages"][2].__setitem__("name", "spice"), r"the name 'spice' is used twice"),
    (lambda d: d.pop("stages"), r"\.?stages: Field required"),
    (lambda d: d["stages"].append({"name": "t", "kind": "train", "input": "q", "config": {"max_epochs": 0}}),
     r"stages\[3\]\.config.*max_epochs.*greater than or equal to 1"),
    (lambda d: d["stages"].append({"name": "t", "kind": "train", "input": "q", "config": {"out": "x"}}),
     r"'out' is set by the pipeline"),
    (lambda d: d["stages"].insert(0, {"name": "f", "kind": "fetch", "dataset": "spice", "size": 0}),
     r"stages\[0\]\.size: Input should be greater than 0"),
])
def test_invalid_pipelines_are_rejected_with_file_field_and_reason(tmp_path, change, message):
    document = yaml.safe_load(yaml.safe_dump(GOOD))
    change(document)
    path = _write(tmp_path, document)
    with pytest.raises(TnqError, match=message) as err:
        load_pipeline(path)
    assert str(err.value).startswith(f"{path}: ")


def test_not_yaml_and_missing_files(tmp_path):
    with pytest.raises(TnqError, match="not valid YAML"):
        load_pipeline(_write(tmp_path, "stages: [a, b"))
    with pytest.raises(TnqError, match="a pipeline file is a mapping"):
        load_pipeline(_write(tmp_path, "- 1\n- 2\n"))
    with pytest.raises(TnqError, match="no such pipeline file"):
        load_pipeline(tmp_path / "absent.yaml")


def test_cli_rejects_before_running_anything(tmp_path):
    document = yaml.safe_load(yaml.safe_dump(GOOD))
    document["stages"][1]["max_force"] = "strong"
    path = _write(tmp_path, document)
    result = subprocess.run(["tnq-data", "run", str(path), "--workdir", str(tmp_path / "work")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and result.stderr.count("\n") == 1 and "max_force" in result.stderr
    assert not (tmp_path / "work").exists()


def test_plan_of_a_new_workdir_runs_everything_and_workers_are_not_part_of_any_fingerprint(tmp_path):
    rows = plan(load_pipeline(_write(tmp_path, GOOD)), tmp_path / "w")
    assert [(row.action, row.reasons) for row in rows] == [("run", ("never run",))] * 3
    assert rows[0].key is not None and rows[1].key is None, "a key is known once the stage's inputs are"
    assert rows[1].fingerprint["inputs"] == {"sample.spice": None} and rows[2].fingerprint["inputs"] == {"spice": None}
    assert rows[1].fingerprint["params"]["max_force"] == 10.0 and "tblite" in rows[0].fingerprint["tools"]
    workers = plan(load_pipeline(_write(tmp_path, dict(GOOD, workers=7))), tmp_path / "w")
    assert [row.fingerprint for row in workers] == [row.fingerprint for row in rows]
    with pytest.raises(TnqError, match="`force` nope: no such stage"):
        plan(load_pipeline(_write(tmp_path, GOOD)), tmp_path / "w", ("nope",))


def test_fingerprints_name_the_code_and_tools_each_kind_runs(tmp_path):
    document = yaml.safe_load(yaml.safe_dump(GOOD))
    document["stages"] += [{"name": "f", "kind": "fetch", "dataset": "qmspin"},
                           {"name": "t", "kind": "train", "input": "q", "config": {"max_epochs": 2}}]
    rows = {row.stage.name: row.fingerprint for row in plan(load_pipeline(_write(tmp_path, document)), tmp_path / "w")}
    assert rows["f"]["code"] is None and rows["f"]["tools"] == {}
    assert rows["sample"]["code"] == rows["spice"]["code"] != rows["t"]["code"], "train also runs tnq_model"
    assert set(rows["t"]["tools"]) == {"torch", "numpy", "zarr"} and "ambertools" in rows["q"]["tools"]
    assert rows["t"]["params"]["config"] == {"max_epochs": 2}
