"""The cost of an iteration count: the HKMR regressor's forward latency
(``torch.utils.benchmark``), what ``hkmr choose-iterations`` trades accuracy against."""

from __future__ import annotations

import torch
from torch.utils import benchmark

from hkmr.config import make_config
from hkmr.model import MeanParams, build_regressor


def regressor_latency(outer: int, inner: int, batch: int, device: str = "cpu",
                      repeats: int = 20, number: int = 5) -> float:
    """Milliseconds of one HKMR regressor forward pass (Φ: 2048-d, as ResNet50's) on
    ``device``, timed by ``torch.utils.benchmark`` (which synchronises CUDA): the fastest of
    ``repeats`` measurements of ``number`` passes each, one thread on a CPU — on a machine
    shared with running trials the median moves with their load (measured 2-100x), the
    fastest does not."""
    cfg = make_config({"model": {"outer_iters": outer, "inner_iters": inner}})
    reg = build_regressor(cfg.model, 2048, MeanParams.default()).eval().to(device)
    phi = torch.randn(batch, 2048, device=device)
    timer = benchmark.Timer(stmt="reg(phi)[-1].pose", globals={"reg": reg, "phi": phi},
                            num_threads=1 if device == "cpu" else torch.get_num_threads())
    with torch.no_grad():
        timer.timeit(number)  # warm-up
        return 1000 * min(timer.timeit(number).mean for _ in range(repeats))
