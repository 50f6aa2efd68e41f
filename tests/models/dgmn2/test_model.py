"""The DGMN2 model: presets, parameter counts, head shapes, the card's architecture, and loading through
``dgmn.load_model`` (the checkpoint module's DGMN2 family)."""
import json

import pytest
import torch

import dgmn
from dgmn.models import CheckpointError, save_model
from dgmn.models.checkpoint import check_card
from dgmn.models.dgmn2 import HEADS, SIZES, BackboneConfig, DGMN2Config

from .helpers import small_config, small_model

# DGMN2's own counts (parameters, buffers excluded), measured on its code: docs in the port notes, also in the
# fixtures' manifest (tested against it in test_equivalence)
BACKBONE_PARAMS = {"tiny": 11_588_464, "small": 20_455_360, "medium": 35_298_712, "large": 47_773_762}
TINY_PARAMS = {"fpn": 15_838_211, "setr_naive": 11_598_211, "setr_pup": 13_954_947, "setr_mla": 13_369_731}
TINY_KEYS = {"fpn": 224, "setr_naive": 166, "setr_pup": 187, "setr_mla": 214}


def card_for(model, name="m", **over):
    K = model.config.num_classes
    c = {"name": name, "architecture": model.config.to_architecture(), "classes": [f"c{i}" for i in range(K)],
         "palette": [[i, i, i] for i in range(K)], "normalization": {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
         "inference": {"mode": "slide", "crop_size": [769, 769], "stride": [513, 513]}}
    c.update(over)
    return c


@pytest.mark.parametrize("size", SIZES)
def test_full_size_presets_have_dgmn2s_parameter_counts(size):
    for head in HEADS:
        with torch.device("meta"):
            m = DGMN2Config.preset(size, head).build()
        assert sum(p.numel() for p in m.backbone.parameters()) == BACKBONE_PARAMS[size]
        if size == "tiny":
            assert sum(p.numel() for p in m.parameters()) == TINY_PARAMS[head]
            assert len(m.state_dict()) == TINY_KEYS[head]


def test_preset_numbers():
    t = BackboneConfig.preset("large")
    assert t.embed_dims == (64, 128, 320, 512) and t.num_heads == (1, 2, 5, 8) and t.head_dims == (64,) * 4
    assert t.depths == (3, 8, 27, 3) and t.mlp_ratios == (8, 8, 4, 4) and t.ln_eps == 1e-6 and t.qkv_bias
    assert [BackboneConfig(depths=d).size_name() for d in ((2, 2, 2, 2), (3, 4, 6, 3), (3, 4, 18, 3), (1, 1, 1, 1))] == \
        ["tiny", "small", "medium", "custom"]
    with torch.device("meta"):
        m = DGMN2Config.preset("tiny", "fpn").build()
    assert m.backbone.block1[0].norm1.eps == 1e-6
    assert tuple(m.backbone.block1[0].attn.pos_emb.rel_height.shape) == (64, 64)
    assert tuple(m.backbone.block4[0].attn.pos_emb.rel_width.shape) == (15, 64)


@pytest.mark.parametrize("head", HEADS)
def test_heads_give_input_sized_logits_and_the_right_strides(head):
    m = small_model(head)
    x = torch.randn(1, 3, 45, 38)
    with torch.no_grad():
        feats = m.backbone(x)
        out = m(x)
    assert out.shape == (1, 5, 45, 38) and torch.isfinite(out).all()
    sizes = [tuple(f.shape[2:]) for f in feats]
    assert sizes[:2] == [(12, 10), (6, 5)]
    assert sizes[2:] == ([(3, 3), (2, 2)] if head == "fpn" else [(6, 5), (6, 5)])


def test_setr_pup_resizes_to_squares_of_twice_the_width():
    m = small_model("setr_pup")
    with torch.no_grad():
        out = m.decode_head(m.backbone(torch.randn(1, 3, 45, 38)))
    assert out.shape == (1, 5, 80, 80)  # width 5 → 10 → 20 → 40 → 80, all square


def test_architecture_json_round_trip_and_refusals():
    cfg = small_config("setr_mla")
    arch = json.loads(json.dumps(cfg.to_architecture()))
    assert DGMN2Config.from_architecture(arch) == cfg and arch["size"] == "custom"
    tiny = DGMN2Config.preset("tiny", "fpn").to_architecture()
    assert tiny["size"] == "tiny" and tiny["head_cfg"] == {"neck_channels": 256, "channels": 128}
    bad = [
        ({"head": "deeplab"}, "unknown DGMN2 head"),
        ({"size": "small"}, "size says 'small'"),
        ({"num_classes": 0}, "num_classes"),
        ({"backbone": {**tiny["backbone"], "depths": [2, 2, 2, 1000]}}, "depths must be 4 integers in 0–64"),
        ({"backbone": {**tiny["backbone"], "num_heads": [3, 2, 5, 8]}}, "not divisible by its 3 heads"),
        ({"backbone": {**tiny["backbone"], "embed_dims": [64, 128, 320]}}, "embed_dims must be 4 integers"),
        ({"backbone": {**tiny["backbone"], "colour": 1}}, "unknown backbone fields: colour"),
        ({"head_cfg": {"channels": 10 ** 9}}, "head_cfg.channels must be an integer in 1–4096"),
        ({"head_cfg": {"img_size": 769}}, "head_cfg of 'fpn' takes neck_channels, channels"),
        ({"extra": 1}, "unknown DGMN2 architecture fields: extra"),
    ]
    for over, msg in bad:
        with pytest.raises(ValueError, match=msg):
            DGMN2Config.from_architecture({**tiny, **over})


def test_saved_and_loaded_through_dgmn_load_model(tmp_path):
    m = small_model("fpn")
    save_model(m, tmp_path / "d2", card_for(m, "d2"))
    loaded = dgmn.load_model(tmp_path / "d2")
    x = torch.randn(1, 3, 40, 36)
    with torch.no_grad():
        assert torch.equal(loaded(x), m(x))
    assert type(loaded).__name__ == "DGMN2Segmenter" and loaded.card["name"] == "d2" and not loaded.training
    assert loaded.config == m.config


def test_cards_that_lie_are_refused(tmp_path):
    m = small_model("setr_naive")
    save_model(m, tmp_path / "n", card_for(m, "n"))
    c = json.loads((tmp_path / "n.json").read_text())
    problems = [
        ({**c["architecture"], "family": "dgmn3"}, "architecture.family must be \"dgmn2\""),
        ({**c["architecture"], "head": "setr_pup", "head_cfg": {}}, "tensors missing"),
        ({**c["architecture"], "head": "setr_pup"}, "head_cfg of 'setr_pup' takes channels; unknown: img_size"),
        ({**c["architecture"], "backbone": {**c["architecture"]["backbone"], "depths": [1, 2, 1, 2]}}, "tensors missing"),
        ({**c["architecture"], "backbone": {**c["architecture"]["backbone"], "depths": [1, 2, 1, 100]}}, "depths must be"),
        ({**c["architecture"], "backbone": {**c["architecture"]["backbone"], "table_sizes": [[6, 5], [4, 4], [3, 3], [3, 2]]}},
         "wrong shape"),
    ]
    for arch, msg in problems:
        (tmp_path / "n.json").write_text(json.dumps({**c, "architecture": arch}))
        with pytest.raises(CheckpointError, match=msg):
            dgmn.load_model(tmp_path / "n")
    with pytest.raises(CheckpointError, match="inference.crop_size must be 2 integers"):
        check_card({**c, "inference": {"mode": "slide", "crop_size": [0, 769]}})
    with pytest.raises(CheckpointError, match="params says"):
        (tmp_path / "n.json").write_text(json.dumps({**c, "params": 5}))
        dgmn.load_model(tmp_path / "n")
