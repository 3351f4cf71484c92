"""The OMol25 pipeline's first half on a real HTTP server: a fetch stage with only a `url`, then an
`import_asedb` stage on the downloaded archive; and the validation of both kinds."""

import io
import tarfile
from pathlib import Path

import pytest
import yaml
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from tnq_core.errors import TnqError
from tnq_data.pipeline import load_pipeline, run_pipeline
from tnq_data.sources.asedb import import_asedb
from tnq_data.store import open_store

from .conftest import HttpFile

REPO = Path(__file__).resolve().parents[2]


def omol_like_archive(folder: Path) -> bytes:
    """A tar.gz holding one .aselmdb whose rows carry OMol25's `charge`, `spin` and `lowdin_charges` data."""
    from ase_db_backends.aselmdb import LMDBDatabase

    path = folder / "val" / "data0000.aselmdb"
    path.parent.mkdir(parents=True)
    with LMDBDatabase(path) as db:
        for energy, (charge, spin) in zip((-2079.5, -2068.1), ((0, 1), (1, 2))):
            water = Atoms("OH2", positions=[(0, 0, 0.12), (0, 0.76, -0.47), (0, -0.76, -0.47)])
            water.calc = SinglePointCalculator(water, energy=energy, forces=[[0.1, 0, 0]] * 3)
            db.write(water, data={"charge": charge, "spin": spin, "lowdin_charges": [charge - 0.6, 0.3, 0.3]})
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(path.parent, "val")
    return buffer.getvalue()


def _write(tmp_path: Path, stages: list[dict]) -> Path:
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump({"name": "omol", "stages": stages}))
    return path


def test_fetch_by_url_then_import_asedb(tmp_path, http_server):
    http_server.files["/files/val.tar.gz"] = HttpFile(omol_like_archive(tmp_path / "made"))
    stages = [{"name": "download", "kind": "fetch", "url": http_server.url("/files/val.tar.gz")},
              {"name": "omol", "kind": "import_asedb", "input": "download", "charges_key": ["lowdin_charges=lowdin"]}]
    state = run_pipeline(load_pipeline(_write(tmp_path, stages)), tmp_path / "work")
    fetched = Path(state["download"]["outputs"]["file"])
    assert fetched == tmp_path / "work" / "raw" / "download" / "val.tar.gz"
    store = open_store(state["omol"]["outputs"]["store"])
    assert store.column("multiplicity").tolist() == [1, 2] and store.column("total_charge").tolist() == [0, 1]
    assert store.column("charges/lowdin").tolist()[:3] == pytest.approx([-0.6, 0.3, 0.3])
    direct = import_asedb([fetched], tmp_path / "direct", charges_key=["lowdin_charges=lowdin"])
    assert state["omol"]["outputs"]["version"] == direct


@pytest.mark.parametrize("stage, message", [
    ({"name": "f", "kind": "fetch"}, r"give `dataset` \(spice, qmspin\), or `url` alone"),
    ({"name": "f", "kind": "fetch", "url": "https://host/a.tgz", "version": "2"}, r"or `url` alone"),
    ({"name": "f", "kind": "fetch", "url": "https://host/"}, r"names no file"),
])
def test_fetch_stages_need_a_dataset_or_the_address_of_a_file(tmp_path, stage, message):
    with pytest.raises(TnqError, match=message):
        load_pipeline(_write(tmp_path, [stage]))


def test_import_asedb_stage_is_validated_and_the_shipped_omol25_pipeline_is_valid(tmp_path):
    stages = [{"name": "f", "kind": "fetch", "url": "https://host/a.tgz"},
              {"name": "i", "kind": "import_asedb", "input": "f", "default_multiplicity": 0}]
    with pytest.raises(TnqError, match=r"stages\[1\]\.default_multiplicity: Input should be greater than or equal to 1"):
        load_pipeline(_write(tmp_path, stages))
    pipeline = load_pipeline(REPO / "pipelines" / "omol25.yaml")
    assert [stage.kind for stage in pipeline.stages] == ["fetch", "import_asedb", "charges", "train"]
    assert pipeline.stages[1].spin_key == "spin" and pipeline.stages[0].dataset is None
