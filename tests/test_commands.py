"""``hkmr train``, ``hkmr eval`` and ``hkmr demo`` through the real CLI entry point, on a
tiny rendered dataset and a model trained for a few steps."""

import importlib.util
import json
import struct

import cv2
import numpy as np
import pytest
from tensorboardX.proto import event_pb2

from hkmr.cli import main

TINY = ["data.synth_train=16", "data.synth_val=6", "data.synth_test=4", "data.synth_size=64",
        "model.encoder=small_cnn", "train.batch_size=8", "train.steps_per_epoch=3",
        "train.prior_corpus=500", "train.lr=1e-3", "model.prior=none", "train.epochs=2"]


def scalars(folder) -> dict[str, list[tuple[int, float]]]:
    """Every scalar in the TensorBoard event files under ``folder`` (TFRecord framing:
    length, its CRC, the Event proto, its CRC)."""
    out: dict[str, list] = {}
    for path in folder.rglob("events.out.tfevents.*"):
        data, pos = path.read_bytes(), 0
        while pos < len(data):
            (length,) = struct.unpack("<Q", data[pos:pos + 8])
            event = event_pb2.Event.FromString(data[pos + 12:pos + 12 + length])
            pos += 12 + length + 4
            for value in event.summary.value:
                out.setdefault(value.tag, []).append((event.step, value.simple_value))
    return out


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    tracking = ["--tracking", "mlflow"] if importlib.util.find_spec("mlflow") else []
    code = main(["train", "--config", "smoke", *TINY, "--out", str(out), "--degree-limit", "6",
                 *tracking])
    assert code == 0
    return out


def test_train_writes_checkpoint_tensorboard_and_evaluation(trained, capsys):
    for name in ("checkpoint.pt", "config.yaml", "metrics.json", "metrics.parquet",
                 "summary.md", "degrees.png"):
        assert (trained / name).stat().st_size > 0, name
    tb = scalars(trained / "tensorboard")
    assert [step for step, _ in tb["train_loss"]] == [1, 2]
    assert [step for step, _ in tb["val_mpjpe"]] == [1, 2]
    assert all(np.isfinite(v) for _, v in tb["val_mpjpe"])
    assert "test/P1_standard_mpjpe" in tb and "test/seg_fb_acc" in tb
    blob = json.loads((trained / "metrics.json").read_text())
    m = blob["metrics"]
    for key in ("P1_standard_mpjpe", "P2_rectangle_pa_mpjpe", "P1_circle_mpjpe_24",
                "degree_bar_5_mpjpe", "invisible_mpjpe_2d_px", "invisible_pck",
                "seg_fb_acc", "seg_fb_f1", "seg_part_acc", "seg_part_f1"):
        assert isinstance(m[key], float) and np.isfinite(m[key]), key
    assert blob["meta"]["epochs"] == 2 and blob["meta"]["degree_limit"] == 6
    assert "smoke" in blob["meta"]["config"] and "train.epochs=2" in blob["meta"]["overrides"]
    summary = (trained / "summary.md").read_text()
    assert "| P1 |" in summary and "Fig. 6" in summary and "Table 5" in summary


def test_train_tracking_logs_one_mlflow_run_with_config_epochs_and_test_metrics(trained):
    mlflow = pytest.importorskip("mlflow")
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{trained / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("hkmr train").experiment_id])
    assert run.data.params["model.encoder"] == "small_cnn"
    assert run.data.params["train.epochs"] == "2" and run.data.params["seed"] == "0"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val_mpjpe")] == [1, 2]
    assert "P1_standard_mpjpe" in run.data.metrics and run.data.tags["git_revision"]
    assert {a.path for a in client.list_artifacts(run.info.run_id)} >= {"metrics.json",
                                                                         "summary.md"}


def test_train_prints_epoch_lines_and_the_table(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--config", "smoke", *TINY[:-1], "train.epochs=1", "--out", str(out),
                 "--suites", "table1", "--limit", "4"]) == 0
    printed = capsys.readouterr().out
    assert "epoch=1 " in printed and "val_mpjpe=" in printed
    assert "| MPJPE | Standard | Bar | Circle | Rectangle |" in printed
    assert "| P1 |" in printed and "| P2 |" in printed
    m = json.loads((out / "metrics.json").read_text())["metrics"]
    assert m["P1_standard_images"] == 4 and not any(k.startswith("degree_") for k in m)


def test_eval_reproduces_the_training_evaluation(trained, tmp_path, capsys):
    out = tmp_path / "eval"
    assert main(["eval", "--checkpoint", str(trained / "checkpoint.pt"), "--suites",
                 "table1,segmentation", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| MPJPE | Standard | Bar | Circle | Rectangle |" in printed
    ours = json.loads((out / "metrics.json").read_text())["metrics"]
    theirs = json.loads((trained / "metrics.json").read_text())["metrics"]
    for key in ("P1_standard_mpjpe", "P2_bar_mpjpe", "P1_rectangle_pa_mpjpe", "seg_part_f1"):
        assert ours[key] == pytest.approx(theirs[key], rel=1e-5), key
    assert "degree_bar_1_mpjpe" not in ours and "invisible_pck" not in ours
    assert (out / "summary.md").exists() and not (out / "degrees.png").exists()


def test_eval_errors_name_the_problem(tmp_path, trained, capsys):
    assert main(["eval", "--checkpoint", str(tmp_path / "nope.pt")]) == 2
    assert "nope.pt: no such checkpoint" in capsys.readouterr().err
    bad = tmp_path / "bad.pt"
    bad.write_bytes((trained / "checkpoint.pt").read_bytes()[:5000])  # truncated
    assert main(["eval", "--checkpoint", str(bad)]) == 2
    assert "bad.pt: cannot read checkpoint" in capsys.readouterr().err
    assert main(["eval", "--checkpoint", str(trained), "--suites", "table7"]) == 2
    assert "unknown suite(s) table7" in capsys.readouterr().err


def test_demo_on_a_test_render_and_on_an_image_file(trained, tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--checkpoint", str(trained), "--out", str(out), "--index", "3",
                 "--display", "128"]) == 0
    assert "test image 3" in capsys.readouterr().out
    lines = (out / "mesh.obj").read_text().splitlines()
    assert sum(ln.startswith("v ") for ln in lines) == 6890
    assert sum(ln.startswith("f ") for ln in lines) > 10000
    png = cv2.imread(str(out / "demo.png"))
    assert png.shape == (128, 3 * 128, 3)
    side = png[:, 256:]
    assert (np.abs(side.astype(int) - 40).sum(2) > 30).mean() > 0.02, "the side view shows a mesh"
    # an arbitrary photo-sized file: centre-cropped and resized to the model's 64 px
    photo = tmp_path / "photo.jpg"
    src = cv2.imread(str(out / "demo.png"))[:, :128]
    cv2.imwrite(str(photo), cv2.resize(src, (150, 100)))
    assert main(["demo", str(photo), "--checkpoint", str(trained / "checkpoint.pt"),
                 "--out", str(tmp_path / "photo_demo"), "--display", "96"]) == 0
    assert cv2.imread(str(tmp_path / "photo_demo" / "demo.png")).shape == (96, 288, 3)
    assert main(["demo", str(tmp_path / "missing.jpg"), "--checkpoint", str(trained)]) == 2
    assert "missing.jpg" in capsys.readouterr().err


def test_compare_puts_two_checkpoints_in_table4s_shape(trained, tmp_path_factory, capsys):
    """Two trained models (the module's HKMR run and an HMR run in the loop on the same data)
    evaluated into one Table 4: a row each, occluded columns and invisible joints filled."""
    spin = tmp_path_factory.mktemp("spin")
    assert main(["train", "--config", "smoke", *TINY, "model.regressor=hmr",
                 "train.in_the_loop=true", "train.smplify_iters=5", "data.smpl_fraction=0.5",
                 "--out", str(spin), "--no-eval"]) == 0
    assert (spin / "fits.npz").exists()
    out = tmp_path_factory.mktemp("compare")
    assert main(["compare", "--checkpoint", f"SPIN={spin}", "--checkpoint",
                 f"HKMR_MF={trained / 'checkpoint.pt'}", "--out", str(out), "--limit", "8"]) == 0
    text = (out / "table4.md").read_text()
    assert "| MPJPE | Standard P1 | Standard P2 | Bar P1 |" in text
    assert "Invisible MPJPE (pixel) ↓ | Invisible PCK (%) ↑ |" in text
    rows = [line for line in text.splitlines() if line.startswith(("| SPIN", "| HKMR_MF"))]
    assert len(rows) == 4 and "—" not in "".join(rows), rows  # MPJPE and PA-MPJPE, all filled
    blob = json.loads((out / "table4.json").read_text())
    assert set(blob["runs"]) == {"SPIN", "HKMR_MF"}
    assert blob["runs"]["SPIN"]["P1_bar_mpjpe"] != blob["runs"]["HKMR_MF"]["P1_bar_mpjpe"]
    assert (out / "SPIN" / "metrics.json").exists() and (out / "HKMR_MF" / "summary.md").exists()
    assert main(["compare", "--checkpoint", f"SPIN{spin}", "--out", str(out)]) == 2
    assert "must look like NAME=PATH" in capsys.readouterr().err


def test_device_batch_size_and_overrides_mean_the_same_in_every_command(trained, tmp_path,
                                                                        capsys):
    import yaml

    from hkmr.data.synthetic import ensure_synthetic
    from hkmr.config import load_config

    out = tmp_path / "flags"
    # each key once: a key given twice is refused (the flags stand for their keys)
    tiny = [t for t in TINY if not t.startswith(("train.epochs=", "train.batch_size="))]
    assert main(["train", "--config", "smoke", *tiny, "train.epochs=1", "--device", "cpu",
                 "--batch-size", "4", "--out", str(out), "--no-eval"]) == 0
    saved = yaml.safe_load((out / "config.yaml").read_text())["train"]
    assert (saved["device"], saved["batch_size"]) == ("cpu", 4)
    root = ensure_synthetic(load_config("smoke", TINY).data, progress=False)
    assert main(["eval", "--checkpoint", str(trained), "--suites", "table1", "--limit", "2",
                 "--device", "cpu", "--batch-size", "2", "--out", str(tmp_path / "ev"),
                 f"data.synthetic={root}"]) == 0
    meta = json.loads((tmp_path / "ev" / "metrics.json").read_text())["meta"]
    assert meta["data"] == str(root)
    assert main(["eval", "--checkpoint", str(trained), "model.embed_dim=8"]) == 2
    assert "model.embed_dim would change the model" in capsys.readouterr().err
