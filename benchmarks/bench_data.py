"""Data-layer throughput: render (images/s, one process) and data loading (samples/s).

    python benchmarks/bench_data.py [--size 128] [--samples 48]

Renders into a temporary folder; nothing is kept. Numbers are measured side by side in one run.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np
import torch
from torch.utils.data import DataLoader


def _rate(fn, n: int) -> float:
    fn()  # warm up
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return n / (time.perf_counter() - start)


def bench_render(sizes: list[int]) -> None:
    from hkmr.body import BodyModel
    from hkmr.data.render import face_parts, render_view, sample_appearance
    from hkmr.data.sampler import sample_pose
    from hkmr.data.views import place_views

    model = BodyModel()
    faces = model.faces.numpy()
    parts = face_parts(faces, model.smpl.lbs_weights.numpy())
    rng = np.random.default_rng(0)
    pose, _ = sample_pose(rng)
    with torch.no_grad():
        out = model.forward_pose(torch.as_tensor(pose[None], dtype=torch.float32),
                                 torch.zeros(1, 10))
    views = place_views(out.vertices[0].double().numpy(), out.joints[0].double().numpy(), pose[0])
    for size in sizes:
        look = sample_appearance(rng, size)
        geo = views[3]
        rate = _rate(lambda: render_view(geo.vertices, geo.joints, geo.focal, faces, parts,
                                         size, look), 50)
        print(f"render_view      {size:4d} px: {1000 / rate:6.2f} ms/image  {rate:7.1f} images/s")


def bench_pipeline(size: int) -> None:
    from hkmr.data.shards import DatasetSpec, _Renderer

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    renderer = _Renderer()
    spec = DatasetSpec(counts={"train": 64}, size=size, shard_size=32)
    renderer.shard_table(spec, "train", 0)
    start = time.perf_counter()
    rows = renderer.shard_table(spec, "train", 1).num_rows
    rate = rows / (time.perf_counter() - start)
    torch.set_num_threads(threads)
    print(f"shard pipeline   {size:4d} px: {1000 / rate:6.2f} ms/image  {rate:7.1f} images/s "
          "(sample + body model + 4 views + PNG, one process)")


def bench_loader(size: int, samples: int) -> None:
    from hkmr.data.datasets import SyntheticDataset
    from hkmr.data.shards import DatasetSpec, generate

    with tempfile.TemporaryDirectory() as tmp:
        spec = DatasetSpec(counts={"train": samples}, size=size, seed=0)
        start = time.perf_counter()
        generate(tmp, spec, workers=os.cpu_count(), progress=False)
        gen = time.perf_counter() - start
        print(f"generate {4 * samples} images at {size} px on {os.cpu_count()} cores: "
              f"{gen:.1f} s ({4 * samples / gen:.1f} images/s, incl. process start-up)")
        for augment in (False, True):
            ds = SyntheticDataset(tmp, "train", augment=augment)
            for workers in (0, 2):
                loader = DataLoader(ds, batch_size=32, shuffle=True, num_workers=workers)
                next(iter(loader))  # start-up (worker processes) is not throughput
                start, n = time.perf_counter(), 0
                for _ in range(2):
                    for batch in loader:
                        n += len(batch["img"])
                rate = n / (time.perf_counter() - start)
                print(f"DataLoader augment={augment!s:5} workers={workers}: "
                      f"{rate:7.1f} samples/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--samples", type=int, default=48, help="subject-poses (x4 images)")
    args = parser.parse_args()
    print(f"torch threads: {torch.get_num_threads()}, cores: {os.cpu_count()}")
    bench_render(sorted({args.size, 224}))
    bench_pipeline(args.size)
    bench_loader(args.size, args.samples)


if __name__ == "__main__":
    main()
