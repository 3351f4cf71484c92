"""Pipeline files: a pydantic schema, validated whole before anything runs."""

from pathlib import Path, PurePosixPath
from typing import Annotated, ClassVar, Literal, Union, get_args
from urllib.parse import unquote, urlparse

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from tnq_core.errors import TnqError
from tnq_core.validation import first_problem
from tnq_data.pipeline.plugins import stage_plugin


class _Stage(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(pattern=r"^[A-Za-z0-9_-]+$", description="Stage name; also the folder of its outputs.")

    #: What the stage produces, for checking references: "files", "file", "store" or "run".
    produces: ClassVar[str] = ""
    #: What its `input` must produce ("" when it takes none).
    consumes: ClassVar[str] = ""
    #: Distributions whose versions are part of the stage's fingerprint (those its results depend on).
    tools: ClassVar[tuple[str, ...]] = ()
    #: Packages whose source files are part of the fingerprint (the code revision of tnq it runs).
    code: ClassVar[tuple[str, ...]] = ("tnq_core", "tnq_data")
    #: Whether an interrupted run of the stage continues from what it left (same fingerprint only).
    resumable: ClassVar[bool] = False
    #: Whether another package implements the kind (see plugins.py).
    plugin: ClassVar[bool] = False

    def references(self) -> list[str]:
        """What this stage reads: stage names, or `stage.file` for one file of a stage."""
        return []

    def inputs(self) -> list[str]:
        """Names of the stages whose outputs this stage reads."""
        return [reference.split(".")[0] for reference in self.references()]


class SampleStage(_Stage):
    """Make the project's own demo inputs (a SPICE-layout HDF5 and a QMspin-layout archive) with GFN2-xTB."""

    kind: Literal["sample"]
    spice_conformers: int = Field(4, ge=1)
    qmspin_carbenes: int = Field(6, ge=1)
    seed: int = 0
    produces: ClassVar[str] = "files"
    tools: ClassVar[tuple[str, ...]] = ("rdkit", "tblite", "h5py", "numpy")


def url_file_name(url: str) -> str:
    """The file name a `url` is saved under: the last part of its path (``.../train_4M.tar.gz?x=1`` ->
    ``train_4M.tar.gz``); `ValueError` when the path has none."""
    name = PurePosixPath(unquote(urlparse(url).path)).name
    if not name or name in (".", ".."):
        raise ValueError(f"the address {url!r} names no file; give the address of the file itself")
    return name


class FetchStage(_Stage):
    """Download a known data set (or a mirror), resumable and checksummed; without `dataset`, the file at
    `url` (e.g. an OMol25 archive whose address the user gives), under the last part of its path."""

    kind: Literal["fetch"]
    dataset: Literal["spice", "qmspin"] | None = None
    version: str | None = None
    url: str | None = None
    md5: str | None = None
    sha256: str | None = None
    size: int | None = Field(None, gt=0, description="bytes")
    produces: ClassVar[str] = "file"
    #: The file is the published one, checked by its checksum: no tnq code or tool shapes it.
    code: ClassVar[tuple[str, ...]] = ()
    #: An interrupted download continues from its `.part`.
    resumable: ClassVar[bool] = True

    @model_validator(mode="after")
    def _dataset_or_url(self) -> "FetchStage":
        if self.dataset is None and (self.url is None or self.version is not None):
            raise ValueError("give `dataset` (spice, qmspin), or `url` alone for any other file")
        if self.dataset is None:
            url_file_name(self.url)
        return self


class _Consumer(_Stage):
    input: str = Field(description="A stage name, or `stage.file` for one file of a `sample` stage.")

    def references(self) -> list[str]:
        return [self.input]


class CurateSpiceStage(_Consumer):
    """Curate a SPICE HDF5 into a store."""

    kind: Literal["curate_spice"]
    subset: str | None = None
    elements: list[str] | None = None
    max_force: float | None = Field(None, gt=0, description="eV/Å")
    produces: ClassVar[str] = "store"
    consumes: ClassVar[str] = "file"
    tools: ClassVar[tuple[str, ...]] = ("h5py", "numpy", "rdkit", "zarr")


class CurateQmspinStage(_Consumer):
    """Curate a QMspin archive or folder into a store."""

    kind: Literal["curate_qmspin"]
    produces: ClassVar[str] = "store"
    consumes: ClassVar[str] = "file"
    tools: ClassVar[tuple[str, ...]] = ("numpy", "zarr")


class ImportAsedbStage(_Consumer):
    """Import ASE databases (a file, a folder or an archive of .db/.aselmdb/.lmdb files) into a store."""

    kind: Literal["import_asedb"]
    charge_key: str = "charge"
    spin_key: str = Field("spin", description="read as the multiplicity 2S+1, as fairchem does")
    energy_key: str = "energy"
    forces_key: str = "forces"
    charges_key: list[str] = Field(default_factory=list, description="KEY=SCHEME: per-atom charges -> charges/SCHEME")
    molecule_key: str | None = None
    default_charge: int | None = None
    default_multiplicity: int | None = Field(None, ge=1)
    produces: ClassVar[str] = "store"
    consumes: ClassVar[str] = "file"
    tools: ClassVar[tuple[str, ...]] = ("ase", "ase-db-backends", "lmdb", "numpy", "zarr")


class ChargesStage(_Consumer):
    """Add a partial-charge column to the input stage's store (a new version of it)."""

    kind: Literal["charges"]
    scheme: str
    fallback: list[str] = []
    per_conformer: bool = False
    timeout: float | None = Field(None, gt=0, description="s per molecule")
    produces: ClassVar[str] = "store"
    consumes: ClassVar[str] = "store"
    #: The tools of every scheme (a scheme or fallback of the stage may use any of them), not dask: results
    #: do not depend on how they are scheduled.
    tools: ClassVar[tuple[str, ...]] = ("rdkit", "tblite", "ambertools", "openff-toolkit", "openff-nagl",
                                        "openff-nagl-models", "pyscf", "horton-part", "numpy", "zarr")


class TrainStage(_Consumer):
    """Train a model on the input stage's store and evaluate it on the test split."""

    kind: Literal["train"]
    config: dict = Field(default_factory=dict, description="tnq-train configuration keys (see docs/training.md).")
    produces: ClassVar[str] = "run"
    consumes: ClassVar[str] = "store"
    #: Its tools and code are the plugin's (`TOOLS`, and the package it belongs to), see fingerprint.py.
    plugin: ClassVar[bool] = True
    #: An interrupted training continues from its last.pt.
    resumable: ClassVar[bool] = True

    @field_validator("config")
    @classmethod
    def _valid_training_config(cls, config: dict) -> dict:
        """Checked by the package that trains (found by name, see plugins.py) now, so a bad key fails before
        any stage runs."""
        return stage_plugin("train").validate_config(config)


STAGE_TYPES = (SampleStage, FetchStage, CurateSpiceStage, CurateQmspinStage, ImportAsedbStage, ChargesStage,
               TrainStage)
#: The stage kinds, in one place: the `kind` literal of each stage type.
STAGE_KINDS = tuple(get_args(cls.model_fields["kind"].annotation)[0] for cls in STAGE_TYPES)
Stage = Annotated[Union[STAGE_TYPES], Field(discriminator="kind")]


class Pipeline(BaseModel):
    """A pipeline file: named stages run in order, each reading the outputs of earlier ones."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(pattern=r"^[A-Za-z0-9_-]+$")
    description: str = ""
    workdir: str | None = Field(None, description="Output folder, relative to the current directory (default: the name).")
    workers: int = Field(1, ge=1)
    stages: list[Stage] = Field(min_length=1)

    @model_validator(mode="after")
    def _references(self) -> "Pipeline":
        seen: dict[str, _Stage] = {}
        for index, stage in enumerate(self.stages):
            if stage.name in seen:
                raise ValueError(f"stages[{index}]: the name {stage.name!r} is used twice")
            for source in stage.inputs():
                if source not in seen:
                    raise ValueError(f"stages[{index}] ({stage.name}): input {source!r} is not an earlier stage")
                provided = seen[source].produces
                if not (provided == stage.consumes or (provided == "files" and stage.consumes == "file")):
                    raise ValueError(f"stages[{index}] ({stage.name}): input {source!r} gives a {provided}, "
                                     f"but a {stage.kind} stage needs a {stage.consumes}")
            seen[stage.name] = stage
        return self


def load_pipeline(path: Path | str) -> Pipeline:
    """Read and validate a pipeline file; `TnqError` naming the file, the field and the reason."""
    path = Path(path)
    try:
        document = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise TnqError(f"{path}: no such pipeline file; see pipelines/ for examples") from None
    except yaml.YAMLError as err:
        raise TnqError(f"{path}: not valid YAML ({' '.join(str(err).split())})") from err
    if not isinstance(document, dict):
        raise TnqError(f"{path}: a pipeline file is a mapping with `name` and `stages`")
    try:
        return Pipeline.model_validate(document)
    except ValidationError as err:
        raise TnqError(f"{path}: {first_problem(err, STAGE_KINDS)}") from err
