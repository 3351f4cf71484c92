"""torchmd-net 3.x TensorNet checkpoints read into a tnq Potential with the same energies and forces.

A torchmd-net checkpoint (a Lightning ``.ckpt`` written by ``torchmd-train``) holds ``hyper_parameters`` (the
training arguments) and ``state_dict`` (``model.``-prefixed weights of ``TorchMD_Net``: the TensorNet
``representation_model``, the ``output_model`` head, the ``prior_model`` list and the ``mean``/``std``
buffers). torchmd-net 3.1 computes, per molecule b,

    E_b = sum_{i in b} (std * head(x_i) + atomref[z_i]) + mean,

and tnq's Potential computes scale * TensorNet_b + sum_i atom_refs[z_i] (+ shift per atom), so ``std``
becomes ``scale``, enabled Atomref priors become ``atom_refs``, and the total-charge input (``charge``) is
tnq's state ``("charge",)`` with constant lambda (docs/model.md). ``mean`` is added once per molecule, which
the Potential cannot express, so only ``mean == 0`` is read. Every other option must have the value tnq
reproduces (:data:`REQUIRED`); anything else is refused with one line naming it.
"""

from importlib.metadata import version as package_version
from os import PathLike
from pathlib import Path
from typing import Any, Dict, List, Tuple, Union

import torch
from torch import Tensor

from tnq_core.errors import TnqError
from tnq_core.hashing import file_checksum

from .checkpoint import save_checkpoint
from .nn.tensornet import TensorNet
from .potential import Potential

REP, OUT, PRIOR = "representation_model.", "output_model.", "prior_model."
BASIS = {"rbf.means": REP + "distance_expansion.means", "rbf.betas": REP + "distance_expansion.betas"}
#: Hyperparameters with the only values tnq reproduces (a missing one takes torchmd-net's default).
REQUIRED: Dict[str, Tuple[Any, ...]] = {
    "model": ("tensornet",),
    "output_model": ("Scalar",),
    "equivariance_invariance_group": ("O(3)",),
    "rbf_type": ("expnorm",),
    "activation": ("silu",),
    "reduce_op": ("add", "sum"),
    "cutoff_lower": (0, 0.0),
    "box_vecs": (None,),
    "atom_filter": (-1,),
}
DEFAULTS = {"box_vecs": None, "equivariance_invariance_group": "O(3)", "reduce_op": "add", "atom_filter": -1}
#: Sizes every TensorNet checkpoint states.
SIZES = ("embedding_dimension", "num_layers", "num_rbf", "cutoff_upper", "max_z")
#: The weight torchmd-net keeps that carries nothing tnq needs: the periodic box (refused when set).
IGNORED = (REP + "distance.box",)
#: The scalar linears whose 3C outputs checkpoints from before torchmd-net dropped ``check_errors`` ordered
#: channel-major (c0 I, c0 A, c0 S, c1 I, ...) instead of component-major (all I, all A, all S).
OLD_LAYOUT = ("tensor_embedding.linears_scalar.1.", "layers.{k}.linears_scalar.2.")


def weight_sources(num_layers: int) -> Dict[str, Tuple[str, List[str]]]:
    """How each tnq TensorNet parameter is built from torchmd-net 3.1 ``TorchMD_Net`` weights (no ``model.``):
    tnq name -> (``"copy"``, ``"stack"`` or ``"cat"``, the torchmd-net names, in order).

    TensorNet (``representation_model.``) with its Scalar head (``output_model.``); the radial basis means
    and widths (:data:`BASIS`) are left out: tnq computes them from the cutoff.
    """
    emb = REP + "tensor_embedding."
    copies = {
        "atom_embedding.weight": emb + "emb.weight",
        "embedding.pair.weight": emb + "emb2.weight", "embedding.pair.bias": emb + "emb2.bias",
        "embedding.norm.weight": emb + "init_norm.weight", "embedding.norm.bias": emb + "init_norm.bias",
        "readout.norm.weight": REP + "out_norm.weight", "readout.norm.bias": REP + "out_norm.bias",
        "readout.linear.weight": REP + "linear.weight", "readout.linear.bias": REP + "linear.bias",
    }
    for kind in ("weight", "bias"):
        copies[f"embedding.scalar.0.{kind}"] = f"{emb}linears_scalar.0.{kind}"
        copies[f"embedding.scalar.2.{kind}"] = f"{emb}linears_scalar.1.{kind}"
        for index in (0, 2):
            copies[f"readout.head.{index}.{kind}"] = f"{OUT}output_network.layers.{index}.{kind}"
        for k in range(num_layers):
            for index in range(3):
                copies[f"layers.{k}.radial.layers.{index}.{kind}"] = f"{REP}layers.{k}.linears_scalar.{index}.{kind}"
    sources = {name: ("copy", [source]) for name, source in copies.items()}
    sources["embedding.mix"] = ("stack", [f"{emb}linears_tensor.{i}.weight" for i in range(3)])
    for kind in ("weight", "bias"):
        sources[f"embedding.radial.{kind}"] = ("cat", [f"{emb}distance_proj{part}.{kind}" for part in (1, 2, 3)])
    for k in range(num_layers):
        tensors = [f"{REP}layers.{k}.linears_tensor.{i}.weight" for i in range(6)]
        sources[f"layers.{k}.mix_in"], sources[f"layers.{k}.mix_out"] = ("stack", tensors[:3]), ("stack", tensors[3:])
    return sources


def tensornet_weights(reference: Dict[str, Tensor], num_layers: int) -> Dict[str, Tensor]:
    """tnq TensorNet parameters (state_dict names) from torchmd-net 3.1 ``TorchMD_Net`` weights (no ``model.``),
    as :func:`weight_sources` builds them."""
    combine = {"copy": lambda tensors: tensors[0], "stack": torch.stack, "cat": torch.cat}
    return {name: combine[how]([reference[source] for source in names]).detach().clone()
            for name, (how, names) in weight_sources(num_layers).items()}


def read_torchmdnet(path: Union[str, PathLike]) -> Tuple[Dict[str, Any], Dict[str, Tensor]]:
    """The hyper_parameters and the model weights (``model.`` prefix removed) of the checkpoint at ``path``.

    Read with ``torch.load(weights_only=True)``: no pickled code runs.
    """
    path = Path(path)
    if not path.is_file():
        raise TnqError(f"torchmd-net checkpoint {path} does not exist; pass the .ckpt file written by torchmd-train")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise TnqError(f"cannot read {path} as a torchmd-net checkpoint ({err.__class__.__name__} with "
                       "torch.load(weights_only=True)); pass a .ckpt file written by torchmd-train") from None
    if not isinstance(checkpoint, dict) or not {"hyper_parameters", "state_dict"} <= set(checkpoint):
        raise TnqError(f"{path} is not a torchmd-net checkpoint (no hyper_parameters and state_dict); pass a "
                       ".ckpt file written by torchmd-train")
    weights = {name.removeprefix("model."): value for name, value in checkpoint["state_dict"].items()}
    # Heads saved before torchmd-net's MLP class named their linears output_network.{0,2}.
    for index in (0, 2):
        for kind in ("weight", "bias"):
            old = f"{OUT}output_network.{index}.{kind}"
            if old in weights:
                weights[f"{OUT}output_network.layers.{index}.{kind}"] = weights.pop(old)
    return dict(checkpoint["hyper_parameters"]), weights


def check_options(hparams: Dict[str, Any], path: Path) -> None:
    """Refuse, in one line naming it, the first option whose value tnq does not reproduce, or missing sizes."""
    for name, accepted in REQUIRED.items():
        value = hparams.get(name, DEFAULTS.get(name, "missing"))
        if value not in accepted:
            allowed = " or ".join(repr(a) for a in accepted)
            raise TnqError(f"{path}: torchmd-net option {name}={value!r} is not supported; tnq reads TensorNet "
                           f"checkpoints with {name}={allowed} only")
    missing = [name for name in SIZES if name not in hparams]
    if missing:
        raise TnqError(f"{path}: the torchmd-net hyper_parameters lack {', '.join(missing)}; pass a checkpoint "
                       "written by torchmd-train")


def prior_names(hparams: Dict[str, Any]) -> List[Tuple[str, Dict[str, Any]]]:
    """(name, init arguments) of each prior, as torchmd-net's ``create_prior_models`` reads ``prior_model``
    (a name, a {name: args} dict or a list of these) and ``prior_args`` (which overrides the arguments)."""
    given = hparams.get("prior_model") or []
    priors: List[Tuple[str, Dict[str, Any]]] = []
    for entry in given if isinstance(given, list) else [given]:
        items = entry.items() if isinstance(entry, dict) else [(entry, None)]
        priors += [(name, dict(args or {})) for name, args in items]
    overrides = hparams.get("prior_args")
    if overrides is not None:
        overrides = overrides if isinstance(overrides, list) else [overrides]
        priors = [(name, dict(args or {})) for (name, _), args in zip(priors, overrides)]
    return priors


def atom_references(hparams: Dict[str, Any], weights: Dict[str, Tensor], max_z: int, path: Path) -> Tensor:
    """Float64 (max_z,) sum of the enabled Atomref tables; other priors are refused."""
    refs = torch.zeros(max_z, dtype=torch.float64)
    priors = prior_names(hparams)
    for name, _ in priors:
        if name != "Atomref":
            raise TnqError(f"{path}: torchmd-net prior_model {name!r} is not supported; tnq reads TensorNet "
                           "checkpoints without a prior or with Atomref priors only")
    for index, (_, args) in enumerate(priors):
        key = f"{PRIOR}{index}.atomref.weight"
        if key not in weights:
            raise TnqError(f"{path}: torchmd-net weight {key!r} of its Atomref prior is missing; is the file whole?")
        table = weights.pop(key).to(torch.float64).reshape(-1)
        weights.pop(f"{PRIOR}{index}.initial_atomref", None)
        if table.numel() < max_z:
            raise TnqError(f"{path}: the Atomref prior has {table.numel()} elements but max_z is {max_z}; "
                           "torchmd-net cannot evaluate elements beyond it either, retrain with a full table")
        if args.get("enable", True):
            refs += table[:max_z]
    return refs


def _component_major(value: Tensor) -> Tensor:
    """Rows (3C, ...) ordered c0 I, c0 A, c0 S, c1 I, ... reordered to all I, all A, all S."""
    return value.reshape(-1, 3, *value.shape[1:]).transpose(0, 1).reshape(value.shape)


def from_torchmdnet(path: Union[str, PathLike], dtype: torch.dtype = torch.float64) -> Potential:
    """The Potential of a torchmd-net 3.x TensorNet checkpoint: its energies and forces, prior and scale.

    Args:
        path: the ``.ckpt`` file (torchmd-net 3.x, TensorNet with the Scalar head, O(3)).
        dtype: the network's dtype (the references and the energies are float64 in any case).

    Energies and distances keep the checkpoint's units (tnq reads them as eV and Å). The total-charge input
    (``charge=True``) becomes the state ``("charge",)``; torchmd-net 3.1's TensorNet ignores the spin input.
    """
    path = Path(path)
    return build_potential(*read_torchmdnet(path), path, dtype)


def build_potential(hparams: Dict[str, Any], weights: Dict[str, Tensor], path: Path, dtype: torch.dtype) -> Potential:
    """:func:`from_torchmdnet` of checkpoint contents already read (``weights`` is consumed)."""
    check_options(hparams, path)
    num_layers, max_z = int(hparams["num_layers"]), int(hparams["max_z"])
    if "check_errors" in hparams:  # torchmd-net's own marker of the old layout
        for key in {REP + name.format(k=k) + kind for name in OLD_LAYOUT for k in range(num_layers)
                    for kind in ("weight", "bias")} & set(weights):
            weights[key] = _component_major(weights[key])
    mean, std = (float(weights.pop(name, torch.tensor(default))) for name, default in (("mean", 0.0), ("std", 1.0)))
    if mean != 0.0:
        raise TnqError(f"{path}: torchmd-net standardize mean={mean} is added once per molecule, which a tnq "
                       "Potential cannot express (its shift is per atom); only checkpoints with mean 0 are read")
    refs = atom_references(hparams, weights, max_z, path)
    model = TensorNet(
        hidden_channels=int(hparams["embedding_dimension"]), num_layers=num_layers, num_rbf=int(hparams["num_rbf"]),
        cutoff=float(hparams["cutoff_upper"]), max_z=max_z, trainable_rbf=bool(hparams.get("trainable_rbf", False)),
        state=("charge",) if hparams.get("charge", False) else (), state_mode="tensornet", lambda_mode="constant",
        dtype=dtype,
    )
    try:
        mapped = tensornet_weights(weights, num_layers)
    except KeyError as err:
        raise TnqError(f"{path}: torchmd-net weight {err.args[0]} is missing; is it a TensorNet checkpoint?") from None
    mapped.update({name: weights[source] for name, source in BASIS.items()})
    used = set(BASIS.values()) | set(IGNORED) | {
        source for _, names in weight_sources(num_layers).values() for source in names}
    unexpected = sorted(set(weights) - used)
    if unexpected:
        raise TnqError(f"{path}: torchmd-net weights {unexpected[:3]} have no place in tnq's TensorNet; tnq reads "
                       "TensorNet with the Scalar head and Atomref priors only")
    try:
        missing, _ = model.load_state_dict({name: value.to(dtype) for name, value in mapped.items()}, strict=False)
    except RuntimeError as err:
        raise TnqError(f"{path}: the weights do not fit the TensorNet of its hyper_parameters "
                       f"({str(err).splitlines()[-1].strip()})") from None
    assert all(name.endswith(".state_scale.lam") for name in missing), missing  # only the constant lambdas
    return Potential(model, refs, scale=std).eval()


def import_torchmdnet(checkpoint: Union[str, PathLike], out: Union[str, PathLike]) -> Path:
    """Write the float64 Potential of a torchmd-net checkpoint as ``out/best.pt``; returns that path.

    The run directory holds only the checkpoint, whose extras record the source (``source: torchmdnet``,
    the file, its sha256 and its hyper_parameters): no training config, store or splits, so it serves
    ``tnq_model.load``, the ASE calculator and ``tnq-train export`` but not ``tnq-train eval``. An existing
    ``best.pt`` is never overwritten.
    """
    checkpoint, out = Path(checkpoint), Path(out)
    hparams, weights = read_torchmdnet(checkpoint)
    potential = build_potential(dict(hparams), weights, checkpoint, torch.float64)
    target = out / "best.pt"
    if target.exists():
        raise TnqError(f"{target} already exists; pass a new `out` directory")
    out.mkdir(parents=True, exist_ok=True)
    return save_checkpoint(target, potential, source="torchmdnet", torchmdnet_checkpoint=str(checkpoint.resolve()),
                           torchmdnet_sha256=file_checksum(checkpoint), hyper_parameters=hparams,
                           package_version=package_version("tnq"))
