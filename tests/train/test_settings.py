"""The trainers' settings round trip through JSON (`jaxgan.train.settings.JsonSettings`)."""

import json

import pytest

from jaxgan.train.encoder import EncoderTrainConfig
from jaxgan.train.stylegan2 import TrainConfig


@pytest.mark.parametrize("cls, changed", [(TrainConfig, {"betas": (0.5, 0.9), "resolution": 64}),
                                          (EncoderTrainConfig, {"betas": (0.5, 0.9), "lr": 1e-4})])
def test_settings_round_trip_through_json_keeps_tuples(cls, changed):
    cfg = cls(**changed)
    stored = json.loads(json.dumps(cfg.to_dict()))
    assert stored["betas"] == [0.5, 0.9]
    back = cls.from_dict(stored)
    assert back == cfg and isinstance(back.betas, tuple)


@pytest.mark.parametrize("cls, name", [(TrainConfig, "unknown training settings"),
                                       (EncoderTrainConfig, "unknown encoder training settings")])
def test_unknown_settings_are_named(cls, name):
    with pytest.raises(ValueError, match=f"{name} \\['bogus'\\]"):
        cls.from_dict({"bogus": 1})
