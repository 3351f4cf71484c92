"""Same weights, same output as torchmd-net's TensorNet (runs only where torchmd-net is importable).

torchmd-net is not a dependency; see docs/model.md for running this test in a side environment.
"""

import pytest
import torch

from tnq_model import TensorNet

tensornet_reference = pytest.importorskip("torchmdnet.models.tensornet")


def reference_weights(model: TensorNet) -> dict[str, torch.Tensor]:
    """tnq TensorNet parameters under torchmd-net 3.1's names (same (part, channel) layouts)."""
    c = model.embedding.channels
    emb = model.embedding
    mapped = {
        "distance_expansion.means": model.rbf.means,
        "distance_expansion.betas": model.rbf.betas,
        "tensor_embedding.emb.weight": model.atom_embedding.weight,
        "tensor_embedding.emb2.weight": emb.pair.weight,
        "tensor_embedding.emb2.bias": emb.pair.bias,
        "tensor_embedding.init_norm.weight": emb.norm.weight,
        "tensor_embedding.init_norm.bias": emb.norm.bias,
        "tensor_embedding.linears_scalar.0.weight": emb.scalar[0].weight,
        "tensor_embedding.linears_scalar.0.bias": emb.scalar[0].bias,
        "tensor_embedding.linears_scalar.1.weight": emb.scalar[2].weight,
        "tensor_embedding.linears_scalar.1.bias": emb.scalar[2].bias,
        "out_norm.weight": model.readout.norm.weight,
        "out_norm.bias": model.readout.norm.bias,
        "linear.weight": model.readout.linear.weight,
        "linear.bias": model.readout.linear.bias,
    }
    for part in range(3):
        rows = slice(part * c, (part + 1) * c)
        mapped[f"tensor_embedding.distance_proj{part + 1}.weight"] = emb.radial.weight[rows]
        mapped[f"tensor_embedding.distance_proj{part + 1}.bias"] = emb.radial.bias[rows]
        mapped[f"tensor_embedding.linears_tensor.{part}.weight"] = emb.mix[part]
    for k, layer in enumerate(model.layers):
        for index, linear in enumerate(layer.radial.layers):
            mapped[f"layers.{k}.linears_scalar.{index}.weight"] = linear.weight
            mapped[f"layers.{k}.linears_scalar.{index}.bias"] = linear.bias
        for part in range(3):
            mapped[f"layers.{k}.linears_tensor.{part}.weight"] = layer.mix_in[part]
            mapped[f"layers.{k}.linears_tensor.{part + 3}.weight"] = layer.mix_out[part]
    return {name: value.detach().clone() for name, value in mapped.items()}


@pytest.mark.parametrize("with_charge", [False, True])
def test_energies_equal_torchmdnet(make_model, batched, with_charge: bool) -> None:
    z, pos, batch = batched
    model = make_model(cutoff=5.0, state=("charge",) if with_charge else ())
    reference = tensornet_reference.TensorNet(
        hidden_channels=16, num_layers=2, num_rbf=8, cutoff_upper=5.0, max_z=20, static_shapes=False,
        dtype=torch.float64,
    ).double()
    missing, _ = reference.load_state_dict(reference_weights(model), strict=False)
    assert missing == ["distance.box"] or missing == []
    charge = torch.tensor([1.0, -1.0, 0.0], dtype=torch.float64)
    x, *_ = reference(z, pos, batch, q=charge if with_charge else None)
    reference_energy = torch.zeros(3, dtype=torch.float64).index_add(0, batch, model.readout.head(x).squeeze(-1))
    energy = model(z, pos, batch, total_charge=charge if with_charge else None)
    torch.testing.assert_close(energy, reference_energy)
