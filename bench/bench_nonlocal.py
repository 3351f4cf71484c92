"""Benchmark: cost of nonlocal attention (physics "nonlocal") against the atom count of one molecule.

For single compact random clusters of 50 to 2000 atoms, prints the median time of forward + backward of
NonlocalAttention (C = 128, m = 128 random features) and, for contrast, of exact softmax attention over the
same queries, keys and values (the (n, n) matrix, O(n^2)), each also per atom; then energy + forces of a
TensorNet (128 channels, 2 layers, 32 rbf, 5 Å) without and with "nonlocal". Linear scaling shows as a time
per atom that stays flat as n grows; the exact one grows in proportion to n.

    OMP_NUM_THREADS=1 python bench/bench_nonlocal.py
    python bench/bench_nonlocal.py --device cuda --sizes 1000,10000,50000
"""

import argparse
from collections.abc import Callable

import torch

from tnq_model.nn.nonlocal_attention import NonlocalAttention
from tnq_model.nn.tensornet import TensorNet

import bench_model  # bench/ is on sys.path when a bench script runs (and in the tests: pytest pythonpath)

SIZES = (50, 100, 200, 500, 1000, 2000)


def exact_attention(module: NonlocalAttention, features: torch.Tensor) -> torch.Tensor:
    """Softmax attention of one molecule through the (n, n) logits, with the module's projections."""
    queries = module.query(features) * module.temperature
    keys = module.key(features) * module.temperature
    return torch.softmax(queries @ keys.t(), dim=1) @ module.value(features)


def attention_steps(module: NonlocalAttention, features: torch.Tensor) -> dict[str, Callable[[], None]]:
    """Forward + backward (to the features and the weights) of random-feature and exact attention."""
    batch = torch.zeros(features.shape[0], dtype=torch.long, device=features.device)

    def step(attention: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[], None]:
        def run() -> None:
            x = features.detach().requires_grad_(True)
            attention(x).square().sum().backward()
            module.zero_grad(set_to_none=True)
        return run

    return {"random features": step(lambda x: module(x, batch)), "exact": step(lambda x: exact_attention(module, x))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)), help="atom counts, comma separated")
    parser.add_argument("--channels", type=int, default=128)
    parser.add_argument("--features", type=int, default=None, help="random features m (default: channels)")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    parser.add_argument("--repeats", type=int, default=5, help="timed steps (median reported)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--no-tensornet", action="store_true", help="time the attention module only")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    helpers = bench_model
    sizes = [int(size) for size in args.sizes.split(",")]
    torch.manual_seed(0)
    attention = NonlocalAttention(args.channels, args.features).to(device)
    plain = TensorNet(args.channels, 2, 32, 5.0).to(device)
    torch.manual_seed(0)
    with_nonlocal = TensorNet(args.channels, 2, 32, 5.0, physics=["nonlocal"]).to(device)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {args.threads} thread(s)"
    print(f"one molecule per step, float32, {where}, C={args.channels}, m={attention.directions.shape[0]}, "
          f"median of {args.repeats}; ms and µs per atom")
    print(f"{'atoms':>6} | {'attention':>9} {'µs/atom':>8} | {'exact':>9} {'µs/atom':>8} | "
          f"{'TensorNet':>9} {'+nonlocal':>9} {'µs/atom':>8} {'extra':>6}")
    for size in sizes:
        z, pos, batch = (tensor.to(device) for tensor in helpers.cluster_batch(1, size, torch.float32))
        features = torch.randn(size, args.channels, device=device)
        times = helpers.median_seconds(attention_steps(attention, features), args.warmup, args.repeats, device)
        line = (f"{size:6d} | {1e3 * times['random features']:9.2f} {1e6 * times['random features'] / size:8.2f} | "
                f"{1e3 * times['exact']:9.2f} {1e6 * times['exact'] / size:8.2f} |")
        if not args.no_tensornet:
            steps = {name: helpers.make_steps(lambda p, m=model, z=z, b=batch: m(z, p, b), pos, list(model.parameters()))[0]
                     for name, model in (("plain", plain), ("nonlocal", with_nonlocal))}
            model_times = helpers.median_seconds(steps, args.warmup, args.repeats, device)
            extra = model_times["nonlocal"] / model_times["plain"] - 1
            line += (f" {1e3 * model_times['plain']:9.1f} {1e3 * model_times['nonlocal']:9.1f} "
                     f"{1e6 * model_times['nonlocal'] / size:8.1f} {100 * extra:5.1f}%")
        print(line, flush=True)


if __name__ == "__main__":
    main()
