"""SPIN's training mixture (data.datasets): typed entries with clear errors, a round trip
through the saved config, and a training source whose samples follow the weights with the
largest set's length (SPIN's MixedDataset)."""

import numpy as np
import pytest
import yaml

from hkmr.config import ConfigError, DatasetEntry, load_config, make_config, to_dict
from hkmr.data.source import image_source
from spin_fixture import write_spin_fixture

TINY = ["data.synth_train=16", "data.synth_val=6", "data.synth_test=4", "data.synth_size=64"]


@pytest.mark.parametrize("value,match", [
    ("[]", r"data.datasets must be a non-empty list"),
    ("[{npz: a.npz}]", r"data.datasets\[0\]: give either npz and images"),
    ("[{synthetic: true, npz: a.npz, images: i}]", r"data.datasets\[0\]: give either"),
    ("[{synthetic: true, weight: -1}]", r"data.datasets\[0\].weight=-1 must be a number >= 0"),
    ("[{synthetic: true, wieght: 1}]", r"data.datasets\[0\]=.*allowed keys are"),
    ("[{synthetic: true}, {synthetic: true}]", r"at most one synthetic entry"),
    ("[{synthetic: yes please}]", r"data.datasets\[0\].synthetic='yes please' must be true"),
])
def test_bad_entries_name_the_entry_and_field(value, match):
    with pytest.raises(ConfigError, match=match):
        load_config(None, [f"data.datasets={value}"])


def test_entries_round_trip_through_the_saved_config():
    cfg = load_config(None, ["data.datasets=[{npz: h36m_train.npz, images: h36m, weight: 0.3},"
                             " {synthetic: true, weight: 0.7}]"])
    assert cfg.data.datasets == [DatasetEntry("h36m_train.npz", "h36m", 0.3),
                                 DatasetEntry(weight=0.7, synthetic=True)]
    again = make_config(yaml.safe_load(yaml.safe_dump(to_dict(cfg))))
    assert again.data.datasets == cfg.data.datasets


def test_mixture_follows_the_weights_with_the_largest_sets_length(tmp_path, body_model):
    cfg = load_config(None, TINY)
    from hkmr.data.synthetic import ensure_synthetic

    npz = write_spin_fixture(ensure_synthetic(cfg.data, progress=False), tmp_path, body_model)
    spec = (f"data.datasets=[{{npz: {npz}, images: {tmp_path}, weight: 0.3}}, "
            f"{{synthetic: true, weight: 0.6}}, {{npz: {npz}, images: {tmp_path}, weight: 0.1}}]")
    train = image_source(load_config(None, [*TINY, spec, "data.augment=false"]),
                         progress=False).train
    assert len(train) == 64  # the synthetic train split (16 subject-poses x 4 views)
    assert np.bincount(train.which).tolist() == [19, 39, 6]  # 0.3 / 0.6 / 0.1 of 64, rounded
    item = train[int(np.nonzero(train.which == 0)[0][0])]
    assert item["img"].shape == (3, 64, 64) and int(item["dataset"]) == 0
    with pytest.raises(ValueError, match="not both"):
        image_source(load_config(None, [*TINY, spec, f"data.spin_npz={npz}"]), progress=False)
