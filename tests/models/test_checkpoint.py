import json

import pytest
import torch

from dgmn.models import CheckpointError, build_segmenter, list_checkpoints, load_model, save_model

ARCH = {"backbone": "small", "backbone_cfg": {"width": 16}, "context": "dgmn", "channels": 16, "num_classes": 3,
        "context_cfg": {"dilations": [1, 2], "groups": 4, "random_walk": True}}


def card(**over):
    c = {"name": "tiny", "architecture": dict(ARCH), "classes": ["a", "b", "c"], "palette": [[1, 2, 3]] * 3,
         "normalization": {"mean": [0.5] * 3, "std": [0.2] * 3}}
    c.update(over)
    return c


def tiny(tmp_path, name="tiny"):
    torch.manual_seed(0)
    m = build_segmenter("small", "dgmn", 3, channels=16, backbone_cfg={"width": 16}, dilations=(1, 2), groups=4)
    save_model(m, tmp_path / name, card(name=name))
    return m.eval()


def test_round_trip_by_name_and_by_path(tmp_path):
    m = tiny(tmp_path)
    x = torch.randn(1, 3, 40, 48)
    for ref in ("tiny", tmp_path / "tiny.safetensors", str(tmp_path / "tiny.json")):
        loaded = load_model(ref, directory=tmp_path)
        assert torch.allclose(loaded(x), m(x), atol=1e-6)
        assert loaded.card["name"] == "tiny" and not loaded.training
    assert list_checkpoints(tmp_path) == ["tiny"]


def test_unknown_name_lists_what_is_there(tmp_path):
    tiny(tmp_path)
    with pytest.raises(CheckpointError, match="no checkpoint named 'nope'.*available: tiny"):
        load_model("nope", directory=tmp_path)


def test_pickles_are_refused_without_being_read(tmp_path):
    evil = tmp_path / "model.pth"
    evil.write_bytes(b"not even read")
    for name in ("model.pth", "model.pt", "x.ckpt", "weights.pkl"):
        with pytest.raises(CheckpointError, match="Python pickles, which can run arbitrary code"):
            load_model(tmp_path / name)


def test_truncated_tensors_are_refused(tmp_path):
    tiny(tmp_path)
    p = tmp_path / "tiny.safetensors"
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="not a readable safetensors file.*truncated or corrupt"):
        load_model("tiny", directory=tmp_path)


def test_card_that_disagrees_with_the_tensors_is_refused(tmp_path):
    tiny(tmp_path)
    c = json.loads((tmp_path / "tiny.json").read_text())
    c["architecture"]["channels"] = 32
    (tmp_path / "tiny.json").write_text(json.dumps(c))
    with pytest.raises(CheckpointError, match="does not match its model card.*wrong shape"):
        load_model("tiny", directory=tmp_path)
    c["architecture"]["channels"] = 16
    c["architecture"]["context_cfg"]["random_walk"] = False
    (tmp_path / "tiny.json").write_text(json.dumps(c))
    with pytest.raises(CheckpointError, match="unexpected tensors"):
        load_model("tiny", directory=tmp_path)


def test_broken_cards_are_refused(tmp_path):
    tiny(tmp_path)
    (tmp_path / "tiny.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_model("tiny", directory=tmp_path)
    (tmp_path / "tiny.json").write_text(json.dumps({"name": "x"}))
    with pytest.raises(CheckpointError, match="lacks format, architecture"):
        load_model("tiny", directory=tmp_path)
    (tmp_path / "tiny.json").unlink()
    with pytest.raises(CheckpointError, match="incomplete: its model card file"):
        load_model(tmp_path / "tiny.safetensors")


def test_nan_weights_are_refused(tmp_path):
    m = tiny(tmp_path)
    with torch.no_grad():
        m.classifier.weight[0, 0] = float("nan")
    save_model(m, tmp_path / "tiny", card())
    with pytest.raises(CheckpointError, match="NaN or infinite"):
        load_model("tiny", directory=tmp_path)
