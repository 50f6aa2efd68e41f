"""SegmenterConfig: one architecture description for building, training, cards and loading."""
import json
from pathlib import Path

import pytest
import torch

from dgmn.models import SegmenterConfig, build_segmenter, list_checkpoints, load_model
from dgmn.models.checkpoint import CheckpointError, build_from_card

SHIPPED = Path(__file__).resolve().parents[2] / "checkpoints"


@pytest.mark.parametrize("name", list_checkpoints(SHIPPED))
def test_every_shipped_card_round_trips(name):
    arch = json.loads((SHIPPED / f"{name}.json").read_text())["architecture"]
    config = SegmenterConfig.from_architecture(arch)
    assert config.to_architecture() == arch and list(config.to_architecture()) == list(arch)  # same JSON, same key order
    assert load_model(name).config == config


def test_build_from_a_config_equals_build_from_arguments():
    cfg = SegmenterConfig("small", "dgmn", 8, 16, {"width": 16}, {"dilations": [1, 3], "groups": 4})
    torch.manual_seed(0)
    a = build_segmenter(cfg)
    torch.manual_seed(0)
    b = build_segmenter("small", "dgmn", 8, channels=16, backbone_cfg={"width": 16}, dilations=[1, 3], groups=4)
    assert a.config == b.config == cfg and a.context.dilations == (1, 3)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert cfg.context_cfg["dilations"] == [1, 3]  # building does not change the config it was given
    with pytest.raises(ValueError, match="either a SegmenterConfig alone"):
        build_segmenter(cfg, "none")


def test_bad_architectures_are_named():
    with pytest.raises(ValueError, match="missing num_classes"):
        SegmenterConfig.from_architecture({"backbone": "small", "context": "none", "channels": 8})
    with pytest.raises(ValueError, match="channels must be a positive int"):
        SegmenterConfig("small", "none", 8, 0)
    with pytest.raises(ValueError, match="context_cfg must be a JSON object"):
        SegmenterConfig.from_architecture({"backbone": "small", "context": "none", "channels": 8, "num_classes": 2, "context_cfg": [1]})
    card = {"name": "x", "architecture": {"backbone": "small", "context": "dgmn", "channels": 8, "num_classes": "8"}}
    with pytest.raises(CheckpointError, match="cannot be built: num_classes must be a positive int"):
        build_from_card(card)


def test_training_writes_the_config_into_the_card():
    from dgmn.data import ContextScenes
    from dgmn.train.__main__ import DEFAULTS, card_for

    cfg = json.loads(json.dumps(DEFAULTS))
    cfg.update(name="t")
    model = build_segmenter(SegmenterConfig.from_model_section(cfg["model"], 8))
    card = card_for(cfg, ContextScenes(), model, macs=False)
    assert SegmenterConfig.from_architecture(card["architecture"]) == model.config
