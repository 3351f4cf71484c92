"""The training configuration: a pydantic model read from YAML, overridden by CLI flags, saved with the run."""

import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator

from tnq_core.errors import TnqError
from tnq_core.validation import first_problem

from .nn.d4 import DEFAULT_FUNCTIONAL
from .nn.physics import validate_d4_functional, validate_physics
from .nn.state import MOLECULE_STATES, PARTIAL_CHARGE_PREFIX

#: A state the model is conditioned on: total charge, spin, or one partial-charge column of the store.
StateName = Annotated[str, StringConstraints(
    pattern=rf"^({'|'.join(MOLECULE_STATES)}|{re.escape(PARTIAL_CHARGE_PREFIX)}[A-Za-z0-9_.+-]+)$")]
PositiveFloat = Annotated[float, Field(gt=0)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelConfig(_Section):
    """TensorNet hyperparameters (see `tnq_model.TensorNet`)."""

    hidden_channels: int = Field(64, ge=1)
    num_layers: int = Field(2, ge=0)
    num_rbf: int = Field(32, ge=1)
    cutoff: PositiveFloat = 5.0  # Å
    max_z: int = Field(128, ge=2)
    trainable_rbf: bool = False
    state_mode: Literal["tensornet", "spooky"] = "tensornet"
    lambda_mode: Literal["constant", "learnable", "channel"] = "channel"
    #: Physical terms added to the network (docs/model.md, "Physical terms"); "coulomb" and "d4" add "charges".
    physics: Annotated[list[Literal["charges", "coulomb", "zbl", "d4", "nonlocal"]],
                       AfterValidator(lambda names: list(validate_physics(names)))] = []
    #: Functional whose D4 damping parameters the "d4" term uses (dftd4's table; SPICE's ωB97M by default).
    d4_functional: str = DEFAULT_FUNCTIONAL
    dtype: Literal["float32", "float64"] = "float32"

    @model_validator(mode="after")
    def _functional_needs_d4(self) -> "ModelConfig":
        validate_d4_functional(self.d4_functional, self.physics)
        return self


class LossConfig(_Section):
    """Weighted energy (per atom) and force (per component) errors, each divided by its training-set scale
    when ``scaled`` (sigma_E: spread of the per-atom energies left after the references, eV/atom;
    sigma_F: RMS force component, eV/Å), else in eV/atom and eV/Å."""

    kind: Literal["mse", "l1", "huber"] = "mse"
    scaled: bool = True
    energy_weight: float = Field(1.0, ge=0)
    force_weight: float = Field(30.0, ge=0)
    huber_delta: PositiveFloat = 0.01
    #: Weight of the per-atom charge error (learned charges vs `charge_target`, e; divided by the target's
    #: RMS when ``scaled``); used only when `charge_target` is set.
    charge_weight: float = Field(1.0, ge=0)
    #: Weight of the per-component dipole error (e·Å, against the store's `dipole` column; divided by its
    #: RMS when ``scaled``); needs learned charges when above 0.
    dipole_weight: float = Field(0.0, ge=0)


class OptimConfig(_Section):
    """AdamW with linear warm-up, then reduce-on-plateau; clipping, EMA and early stopping."""

    lr: PositiveFloat = 1e-3
    weight_decay: float = Field(0.0, ge=0)
    warmup_steps: int = Field(100, ge=0)
    plateau_factor: float = Field(0.5, gt=0, lt=1)
    plateau_patience: int = Field(2, ge=0)
    min_lr: float = Field(1e-6, ge=0)
    clip_grad_norm: PositiveFloat = 10.0
    ema_decay: float = Field(0.99, ge=0, lt=1)  # 0 disables the moving average
    early_stopping_patience: int = Field(20, ge=1)
    #: What picks best.pt, drives the plateau schedule and early stopping: "energy_force" (validation
    #: energy MAE per atom / sigma_E + force MAE / sigma_F) or "loss" (the validation loss).
    monitor: Literal["energy_force", "loss"] = "energy_force"


class SplitConfig(_Section):
    """Fractions of molecules in train/val/test and the seed of the split."""

    train: float = Field(0.8, gt=0, le=1)
    val: float = Field(0.1, ge=0, lt=1)
    test: float = Field(0.1, ge=0, lt=1)
    seed: int = 0

    @model_validator(mode="after")
    def _fractions_sum_to_one(self) -> "SplitConfig":
        if abs(self.train + self.val + self.test - 1.0) > 1e-6:
            raise ValueError(f"split fractions must sum to 1, got {self.train + self.val + self.test:g}")
        return self


class TrainConfig(_Section):
    """Everything a training run needs; every CLI option of `tnq-train` is a key here."""

    store: Path
    out: Path = Path("run")
    state: list[StateName] = ["charge", "spin"]
    target: Literal["energy", "formation_energy"] = "energy"
    references: Literal["element", "element_charge", "element_state"] = "element_state"
    max_epochs: int = Field(100, ge=1)
    batch_size: int = Field(32, ge=1)
    device: Literal["cpu", "cuda"] = "cpu"
    seed: int = 0
    num_workers: int = Field(0, ge=0)
    buffer_shards: int = Field(2, ge=1)
    threads: int | None = Field(None, ge=1)  # torch intra-op threads per process; None: DEFAULT_THREADS (1)
    svg: bool = False  # also write the figures as SVG
    #: Keep the splits, usable conformers, references and scales derived from a store's data in the setup cache
    #: ($TNQ_SETUP_CACHE, else ~/.cache/tnq/setup) and read them from there (docs/training.md, "Setup cache").
    setup_cache: bool = True
    #: `charges/<scheme>` column the learned charges are trained on (needs "charges" in `model.physics`).
    charge_target: Annotated[str, StringConstraints(
        pattern=rf"^{re.escape(PARTIAL_CHARGE_PREFIX)}[A-Za-z0-9_.+-]+$")] | None = None
    model: ModelConfig = ModelConfig()
    loss: LossConfig = LossConfig()
    optim: OptimConfig = OptimConfig()
    split: SplitConfig = SplitConfig()

    @model_validator(mode="after")
    def _charge_supervision_needs_charges(self) -> "TrainConfig":
        if "charges" not in self.model.physics:
            if self.charge_target is not None:
                raise ValueError(f"charge_target {self.charge_target!r} needs learned charges; add charges to "
                                 "model.physics")
            if self.loss.dipole_weight > 0:
                raise ValueError("loss.dipole_weight > 0 needs learned charges; add charges to model.physics")
        return self

    @property
    def supervises_dipole(self) -> bool:
        """Whether the loss has a dipole term."""
        return self.loss.dipole_weight > 0

    @property
    def partial_charges(self) -> list[str]:
        """The `charges/<scheme>` columns in the state, in order."""
        return [name for name in self.state if name.startswith(PARTIAL_CHARGE_PREFIX)]


def read_yaml(path: Path) -> dict[str, Any]:
    """The mapping in the YAML file at `path`."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except OSError as err:
        raise TnqError(f"cannot read config {path}: {err.strerror}; pass an existing YAML file") from None
    except yaml.YAMLError as err:
        raise TnqError(f"config {path} is not valid YAML ({err.__class__.__name__}); fix its syntax") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise TnqError(f"config {path} must hold a mapping of keys, not a {type(data).__name__}")
    return data


def resolve_config(path: Path | None = None, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """The config from the YAML file at `path` (if any) with the non-None `overrides` (CLI flags) on top; a
    key "section.name" (e.g. "model.physics") sets one key of a section."""
    data = read_yaml(path) if path is not None else {}
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        section, _, name = key.rpartition(".")
        if section:
            if not isinstance(data.get(section, {}), dict):
                raise TnqError(f"`{section}` in config {path} must be a mapping of keys; fix the file")
            data[section] = {**data.get(section, {}), name: value}
        else:
            data[key] = value
    try:
        return TrainConfig.model_validate(data)
    except ValidationError as err:
        source = f"config {path}" if path is not None else "options"
        raise TnqError(f"invalid {source}: {first_problem(err, top='config')}; see docs/training.md for the keys") from None


def write_config(config: TrainConfig, path: Path) -> None:
    """Save `config` as YAML that `resolve_config` reads back to an equal config."""
    Path(path).write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
