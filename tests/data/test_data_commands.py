"""``hkmr synth poses|dataset|preview`` through the real CLI entry point."""

import json

import cv2
import numpy as np
import pyarrow.parquet as pq

from hkmr.cli import main


def test_synth_poses_writes_a_seeded_corpus(tmp_path):
    out = tmp_path / "corpus"
    assert main(["synth", "poses", "--n", "30", "--seed", "2", "--out", str(out)]) == 0
    table = pq.read_table(out / "poses.parquet")
    assert table.num_rows == 30 and set(table.column_names) == {"pose", "style"}
    poses = np.array(table.column("pose").to_pylist())
    assert poses.shape == (30, 72) and np.isfinite(poses).all()
    assert b"seed" in table.schema.metadata
    again = tmp_path / "again"
    main(["synth", "poses", "--n", "30", "--seed", "2", "--out", str(again)])
    assert np.array_equal(np.array(pq.read_table(again / "poses.parquet").column("pose")
                                   .to_pylist()), poses)


def test_synth_dataset_then_preview(tmp_path, capsys):
    out = tmp_path / "ds"
    args = ["synth", "dataset", "--n", "2", "--size", "48", "--seed", "1", "--out", str(out),
            "--workers", "1", "--subjects", "2,1,1"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "16 images" in printed and "images/s" in printed
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["settings"]["counts"] == {"train": 2, "val": 1, "test": 1}
    assert main(args) == 0  # resuming a finished dataset renders nothing
    assert "rendered 0" in capsys.readouterr().out
    assert main(["synth", "preview", str(out), "--n", "2", "--occlusion", "bar",
                 "--out", str(tmp_path / "preview")]) == 0
    img = cv2.imread(str(tmp_path / "preview" / "preview.png"))
    assert img.shape == (2 * 2 * 48, 4 * 48, 3)


def test_bad_arguments_give_one_clear_error(tmp_path, capsys):
    assert main(["synth", "dataset", "--n", "2", "--out", str(tmp_path / "x"),
                 "--subjects", "two,1,1"]) == 2
    assert "--subjects" in capsys.readouterr().err
    assert main(["synth", "preview", str(tmp_path / "missing"), "--out",
                 str(tmp_path / "p.png")]) == 2
    assert "manifest" in capsys.readouterr().err
