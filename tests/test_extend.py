"""Per-image errors split past the size limit and read back whole; ``hkmr sweep --target-mde
--extend`` (a results folder's seeds kept, only later seeds run, after the identity and
reproduction checks)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa


def test_per_image_errors_split_by_seed_past_the_limit_and_read_back_whole(tmp_path):
    from tuning.image_files import PART_LIMIT, image_files, read_images, write_images
    from tuning.images import write_bootstrap

    # 12 seeds x 5 configurations x 5120 rows: the size of a cpu_keypoints Table 2
    rng = np.random.default_rng(0)
    n, names = 5120, ["c0", "c1", "c2", "c3", "c4"]
    parts = []
    for seed in range(12):
        for name in names:
            parts.append(pa.table({
                "trial_id": [f"{name}-{seed}"] * n, "configuration": [name] * n,
                "seed": pa.array([seed] * n, pa.int64()),
                "image": pa.array(np.arange(n) % 256, pa.int64()),
                "protocol": ["P1", "P2"] * (n // 2), "occlusion": ["standard"] * n,
                "degree": pa.array([0] * n, pa.int64()),
                "mpjpe": rng.gamma(4, 20, n), "pa_mpjpe": rng.gamma(4, 12, n)}))
    table = pa.concat_tables(parts)
    written = write_images(table, tmp_path)
    assert [p.name for p in written] == ["images.parquet", "images-seeds6-11.parquet"]
    assert all(p.stat().st_size <= PART_LIMIT for p in written)
    back = read_images(tmp_path)
    assert back.num_rows == table.num_rows
    assert sorted(set(back.column("seed").to_pylist())) == list(range(12))
    assert back.schema.field("mpjpe").type == pa.float32()
    assert np.allclose(back.column("mpjpe").to_numpy(), table.column("mpjpe").to_numpy(),
                       rtol=1e-6)
    # the bootstrap reads every part (a small folder split by a small limit)
    small = table.filter(pa.compute.and_(pa.compute.less(table.column("seed"), 4),
                                         pa.compute.less(table.column("image"), 8)))
    small = small.filter(pa.compute.is_in(small.column("configuration"),
                                          pa.array(["c0", "c4"])))
    few = tmp_path / "few"
    assert len(write_images(small, few, limit=2000)) == 4
    text = write_bootstrap(few, [{"columns": ["c0", "c4"], "reference": "c4"}], 20).read_text()
    assert "| c0 − c4 | P1 | MPJPE |" in text and "| 4 | 4 |" in text
    # a smaller table rewritten into the folder leaves no stale part behind
    write_images(table.filter(pa.compute.less(table.column("seed"), 2)), tmp_path)
    assert [p.name for p in image_files(tmp_path)] == ["images.parquet"]
    assert read_images(tmp_path).num_rows == table.num_rows // 6
