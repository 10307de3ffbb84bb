"""Latency and parameters of the HMR, CMR and HKMR (reference and fast) regressors, side by
side in one run.

Regressor only (Φ given, 2048-d as ResNet50's) at T=3, P=4, batch 1 and 64; then end to end
with the ResNet50 encoder on 224 px images. Prints medians (ms) and ratios to HMR. CMR at its
paper sizes (256 channels on 1723 vertices) and at the CPU presets' (64 on 431).

    python benchmarks/bench_models.py [--repeats 30] [--e2e-batch 1]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from hkmr.config import make_config
from hkmr.model import MeanParams, MeshEstimator, build_regressor
from hkmr.model.estimator import count_parameters


def median_ms(fn, repeats: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


ROWS = (("HMR", {"regressor": "hmr"}),
        ("CMR", {"regressor": "cmr"}),
        ("CMR, CPU presets", {"regressor": "cmr", "cmr_channels": 64, "cmr_downsample": 16}),
        ("HKMR reference", {"regressor": "hkmr", "chain_impl": "reference"}),
        ("HKMR fast", {"regressor": "hkmr", "chain_impl": "fast"}))


def regressors(**model):
    return {name: make_config({"model": {**row, **model}}) for name, row in ROWS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--e2e-batch", type=int, default=1)
    parser.add_argument("--e2e-repeats", type=int, default=10)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, T=3, P=4")
    configs = regressors(outer_iters=3, inner_iters=4)
    print("\nregressor only (Φ: 2048-d), inference, median ms")
    print(f"{'':18s}{'params':>10s}" + "".join(f"{f'batch {b}':>12s}{'ratio':>8s}" for b in (1, 64)))
    base = {}
    for name, cfg in configs.items():
        torch.manual_seed(0)
        reg = build_regressor(cfg.model, 2048, MeanParams.default()).eval()
        row = f"{name:18s}{count_parameters(reg) / 1e6:9.2f}M"
        for batch in (1, 64):
            phi = torch.randn(batch, 2048)
            with torch.no_grad():
                ms = median_ms(lambda: reg(phi)[-1].pose, args.repeats)
            base.setdefault(batch, ms)
            row += f"{ms:12.2f}{ms / base[batch]:8.2f}"
        print(row)
    print(f"\nend to end with ResNet50 at 224 px, batch {args.e2e_batch}, inference, median ms")
    img = torch.randn(args.e2e_batch, 3, 224, 224)
    e2e_base = None
    for name, cfg in configs.items():
        torch.manual_seed(0)
        model = MeshEstimator(cfg.model).eval()
        with torch.no_grad():
            ms = median_ms(lambda: model(img)[-1].pose, args.e2e_repeats, warmup=2)
        e2e_base = e2e_base or ms
        print(f"{name:18s}{count_parameters(model) / 1e6:9.2f}M{ms:12.1f}{ms / e2e_base:8.2f}")


if __name__ == "__main__":
    main()
