"""Pose priors (Sec. 3.2 "Pose Prior", Table 2 "Discriminator") on a generated pose corpus."""

import numpy as np
import pytest
import torch

from hkmr.body.rotations import axis_angle_to_matrix
from hkmr.data.sampler import sample_poses
from hkmr.model.priors import PoseDiscriminator, PoseVAE, train_vae


@pytest.fixture(scope="module")
def corpus():
    poses, _ = sample_poses(3000, seed=1)
    return torch.from_numpy(poses)


def _random_poses(n, seed):
    gen = torch.Generator().manual_seed(seed)
    return 0.8 * torch.randn(n, 72, generator=gen)


def test_vae_gives_lower_kl_to_corpus_poses_than_to_random_poses(corpus, tmp_path):
    train, held_out = corpus[:2500], corpus[2500:]
    vae = train_vae(train[:, 3:], epochs=20, seed=0)
    assert vae.decoder is None and not any(p.requires_grad for p in vae.parameters())
    with torch.no_grad():
        kl_corpus = vae.prior_loss(held_out.view(-1, 24, 3)).item()
        kl_random = vae.prior_loss(_random_poses(500, 0).view(-1, 24, 3)).item()
    assert kl_corpus * 1.5 < kl_random, (kl_corpus, kl_random)
    # the prior's gradient reaches the predicted pose through the frozen encoder
    pose = held_out[:4].view(-1, 24, 3).clone().requires_grad_(True)
    vae.prior_loss(axis_angle_to_matrix(pose)).backward()
    assert pose.grad[:, 1:].abs().sum() > 0 and pose.grad[:, 0].abs().sum() == 0
    path = tmp_path / "vae.pt"
    vae.save(path)
    loaded = PoseVAE.load(path)
    with torch.no_grad():
        assert np.isclose(loaded.prior_loss(held_out.view(-1, 24, 3)).item(), kl_corpus)


def test_vae_load_errors_are_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="hkmr prior train-vae"):
        PoseVAE.load(tmp_path / "missing.pt")
    torch.save({"something": 1}, tmp_path / "wrong.pt")
    with pytest.raises(ValueError, match="not a VAE prior checkpoint"):
        PoseVAE.load(tmp_path / "wrong.pt")


def test_discriminator_separates_corpus_from_random_poses(corpus):
    torch.manual_seed(0)
    disc = PoseDiscriminator(hidden=128)
    opt = torch.optim.Adam(disc.parameters(), lr=1e-3)
    real_rot = axis_angle_to_matrix(corpus[:2500].view(-1, 24, 3))
    fake_rot = axis_angle_to_matrix(_random_poses(2500, 1).view(-1, 24, 3))
    betas = torch.randn(2500, 10)
    for step in range(150):
        idx = torch.randint(0, 2500, (64,))
        loss = disc.discriminator_loss(real_rot[idx], betas[idx], fake_rot[idx], betas[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        test_real = axis_angle_to_matrix(corpus[2500:].view(-1, 24, 3))
        test_fake = axis_angle_to_matrix(_random_poses(500, 2).view(-1, 24, 3))
        b = torch.randn(500, 10)
        real_score = disc(test_real, b)[:, :24].mean(1)
        fake_score = disc(test_fake, b)[:, :24].mean(1)
    threshold = 0.5
    accuracy = ((real_score > threshold).float().mean() + (fake_score < threshold).float().mean()) / 2
    assert accuracy > 0.9, accuracy
    # the generator loss is lower for corpus poses: the prior pushes predictions towards them
    assert disc.generator_loss(test_real, b) < disc.generator_loss(test_fake, b)


def test_train_vae_command_round_trip(corpus, tmp_path, capsys):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from hkmr.cli import main

    path = tmp_path / "poses.parquet"
    pq.write_table(pa.table({"pose": corpus[:600].numpy().tolist()}), path)
    out = tmp_path / "prior"
    assert main(["prior", "train-vae", "--corpus", str(path), "--out", str(out),
                 "--epochs", "2", "--batch-size", "64", "--device", "cpu"]) == 0
    assert "held-out poses" in capsys.readouterr().out
    assert PoseVAE.load(out / "vae.pt").decoder is None
    assert main(["prior", "train-vae", "--corpus", str(path), "--out", str(tmp_path / "v.pt")]) == 2
    assert "--out is an output folder" in capsys.readouterr().err
    assert main(["prior", "train-vae", "--corpus", str(tmp_path / "none.parquet"),
                 "--out", str(out)]) == 2
    assert "pose corpus not found" in capsys.readouterr().err
