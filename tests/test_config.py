"""The config vocabulary: YAML, dotted overrides and validation messages."""

import pytest

from hkmr.config import ConfigError, keys, load_config, make_config


def test_defaults_are_the_papers():
    cfg = make_config()
    assert (cfg.model.outer_iters, cfg.model.inner_iters) == (3, 4)
    assert cfg.model.passes == "forward_backward" and cfg.model.joint_dependency == "all"
    assert cfg.model.chain_hierarchy and cfg.model.prior == "vae"


def test_yaml_nested_and_dotted_and_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  regressor: hmr\n  outer_iters: 2\nloss.w_2d: 3.5\n")
    cfg = load_config(path, ["model.inner_iters=6", "model.chain_hierarchy=false"])
    assert cfg.model.regressor == "hmr" and cfg.model.outer_iters == 2
    assert cfg.loss.w_2d == 3.5 and cfg.model.inner_iters == 6
    assert cfg.model.chain_hierarchy is False


@pytest.mark.parametrize("override,message", [
    ("model.passes=sideways", r"model.passes='sideways' is not allowed; choose one of "
                              r"'forward_backward', 'forward_only'"),
    ("model.outer_iters=0", r"model.outer_iters=0 is out of range; allowed 1..16"),
    ("model.outer_iters=2.5", r"model.outer_iters=2.5 must be a whole number"),
    ("model.chain_hierarchy=maybe", r"model.chain_hierarchy='maybe' must be true or false"),
    ("loss.w_3d=-1", r"loss.w_3d=-1.0 is out of range"),
    ("model.outer_iter=2", r"unknown config key 'model.outer_iter'"),
    ("model", r"must look like key=value"),
    ("train.in_the_loop=maybe", r"train.in_the_loop='maybe' must be true or false"),
    ("train.smplify_prior=mog", r"train.smplify_prior='mog' is not allowed; choose one of "
                                r"'vae', 'gmm'"),
    ("train.smplify_iters=0", r"train.smplify_iters=0 is out of range; allowed 1..10000"),
    ("train.fit_threshold=-5", r"train.fit_threshold=-5.0 is out of range"),
    ("data.smpl_fraction=1.5", r"data.smpl_fraction=1.5 is out of range; allowed 0.0..1.0"),
    ("model.chain_layer=conv", r"model.chain_layer='conv' is not allowed; choose one of "
                               r"'linear', 'mlp'"),
    ("model.chain_hidden=0", r"model.chain_hidden=0 is out of range; allowed 1..4096"),
    ("train.lr_schedule=step", r"train.lr_schedule='step' is not allowed; choose one of "
                               r"'constant', 'cosine'"),
    ("train.warmup_steps=-1", r"train.warmup_steps=-1 is out of range"),
])
def test_invalid_values_name_key_value_and_allowed(override, message):
    with pytest.raises(ConfigError, match=message):
        make_config(overrides=[override])


def test_bad_file_is_named(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("model:\n  prior: gmm\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: model.prior='gmm'"):
        load_config(path)


def test_sweep_keys_exist():
    for key in ("model.outer_iters", "model.inner_iters", "model.passes",
                "model.joint_dependency", "model.chain_hierarchy", "model.embed_dim",
                "model.prior", "loss.w_3d", "loss.w_2d", "loss.w_smpl", "loss.w_prior",
                "loss.w_shape", "model.regressor", "model.encoder", "model.pretrained",
                "train.in_the_loop", "train.smplify_iters", "train.smplify_lr",
                "train.smplify_prior", "train.fit_threshold", "data.smpl_fraction"):
        assert key in keys()


def test_the_regime_is_a_checked_key_and_configs_written_before_it_still_load():
    """``regime`` names how a run trains; it must agree with model.encoder and
    model.freeze_encoder (an error names all three); unset, it is read from them."""
    from hkmr.config import ConfigError, load_config, make_config

    assert load_config("smoke").regime == "end_to_end"
    assert load_config("smoke_frozen").regime == "frozen_features"
    assert load_config("cpu_keypoints").regime == "keypoints"
    assert make_config({"model": {"freeze_encoder": True}}).regime == "frozen_features"
    with pytest.raises(ConfigError, match=r"regime='keypoints' needs model.encoder=keypoints; "
                                          r"model.encoder='small_cnn'"):
        load_config("smoke", ["regime=keypoints"])
    with pytest.raises(ConfigError, match=r"regime='frozen_features' needs"):
        load_config("smoke_frozen", ["model.freeze_encoder=false"])
    with pytest.raises(ConfigError, match=r"regime='images' is not allowed; choose one of"):
        load_config("smoke", ["regime=images"])
