"""``python -m dgmn.convert dgmn2``: conversions that work (every head, the ways mmseg checkpoints come), and bad
inputs refused with one line, exit status 2 and nothing written."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import dgmn
from dgmn.convert import ConvertError, convert_dgmn2, infer_dgmn2
from dgmn.convert.__main__ import main
from dgmn.models.dgmn2 import HEADS, DGMN2Config

from ..models.dgmn2.helpers import mmseg_checkpoint, small_model

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def models():
    return {head: small_model(head, seed=i) for i, head in enumerate(HEADS)}


def run(argv, capsys):
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def refused(argv, capsys, out_dir: Path, match: str):
    rc, out, err = run(argv, capsys)
    assert rc == 2 and out == "", (rc, out, err)
    assert err.startswith("dgmn.convert: ") and err.count("\n") == 1, err  # one line
    assert match in err, err
    assert not out_dir.exists() or not any(out_dir.iterdir()), list(out_dir.iterdir())
    return err


@pytest.mark.parametrize("head", HEADS)
def test_every_head_converts_and_loads_with_the_same_logits(models, head, tmp_path, capsys):
    m = models[head]
    src = mmseg_checkpoint(m, tmp_path / f"{head}.pth")
    rc, out, err = run(["dgmn2", src, "--out", tmp_path / "out"], capsys)
    assert rc == 0 and err == "" and out.count("\n") == 1
    name = f"dgmn2-custom-{head.replace('_', '-')}"
    assert f"{name}.safetensors" in out and "ignored: meta" in out
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [f"{name}.json", f"{name}.safetensors"]
    loaded = dgmn.load_model(tmp_path / "out" / name)
    x = torch.randn(1, 3, 43, 50)
    with torch.no_grad():
        assert torch.equal(loaded(x), m(x))
    assert loaded.config == m.config


def test_card_contents(models, tmp_path, capsys):
    m = models["fpn"]
    classes = [f"k{i}" for i in range(5)]
    palette = [[10 * i, 0, 255] for i in range(5)]
    meta = {"CLASSES": tuple(classes), "PALETTE": palette, "config": "x = 1", "env_info": "sys.platform: linux"}
    src = mmseg_checkpoint(m, tmp_path / "f.pth", meta=meta)
    assert run(["dgmn2", src, "--out", tmp_path / "o", "--name", "mine"], capsys)[0] == 0
    card = json.loads((tmp_path / "o" / "mine.json").read_text())
    assert card["classes"] == classes and card["palette"] == palette and card["name"] == "mine"
    assert card["normalization"] == {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
    assert card["architecture"] == m.config.to_architecture() and card["architecture"]["family"] == "dgmn2"
    assert card["inference"]["mode"] == "slide" and card["inference"]["crop_size"] == [769, 769]
    assert card["inference"]["stride"] == [513, 513] and card["inference"]["align_corners"] is True
    assert card["provenance"]["license"] == "Apache-2.0" and "fudan-zvg/DGMN2" in card["provenance"]["url"]
    assert card["params"] == sum(p.numel() for p in m.parameters())
    assert "metrics" not in card  # a custom size has no reported score


def test_a_published_configuration_gets_cityscapes_and_its_reported_miou(tmp_path):
    """A full-size Tiny + SETR-Naive (random weights, 19 classes), as a bare state dict: the card names Cityscapes'
    classes and the mIoU DGMN2's README reports."""
    torch.manual_seed(0)
    m = DGMN2Config.preset("tiny", "setr_naive").build()
    torch.save(m.state_dict(), tmp_path / "bare.pth")
    r = convert_dgmn2(tmp_path / "bare.pth", tmp_path / "o", size="tiny", head="setr_naive")
    card = json.loads(r["card"].read_text())
    assert card["name"] == "dgmn2-tiny-setr-naive" and r["ignored"] == []
    assert card["classes"][:3] == ["road", "sidewalk", "building"] and len(card["classes"]) == 19
    assert card["metrics"]["miou"] == 77.23 and card["metrics"]["miou_ms_flip"] == 78.23
    assert card["provenance"]["config"] == "segmentation/configs/setr_naive_dgmn2_tiny_4x2_769x769_40k_cityscapes.py"
    assert card["params"] == 11_598_211


def test_training_leftovers_are_ignored_and_reported(models, tmp_path, capsys):
    m = models["setr_pup"]
    state = {f"module.{k}": v for k, v in m.state_dict().items()}  # saved from a DistributedDataParallel wrapper
    state["module.auxiliary_head.conv_seg.weight"] = torch.zeros(5, 16, 1, 1)
    state["module.auxiliary_head.conv_seg.bias"] = torch.zeros(5)
    torch.save({"meta": {"iter": 40000}, "state_dict": state,
                "optimizer": {"state": {0: {"exp_avg": torch.zeros(3)}}, "param_groups": [{"lr": 1e-4}]}}, tmp_path / "t.pth")
    rc, out, _ = run(["dgmn2", tmp_path / "t.pth", "--out", tmp_path / "o"], capsys)
    assert rc == 0 and "ignored: meta, optimizer" in out and "dropped 2 training-only tensors" in out
    loaded = dgmn.load_model(tmp_path / "o" / "dgmn2-custom-setr-pup")
    x = torch.randn(1, 3, 30, 30)
    with torch.no_grad():
        assert torch.equal(loaded(x), m(x))


def test_resnet_checkpoint_is_refused(tmp_path, capsys):
    torch.manual_seed(0)
    state = {"backbone.conv1.weight": torch.randn(8, 3, 7, 7), "backbone.bn1.weight": torch.ones(8),
             "backbone.layer1.0.conv1.weight": torch.randn(8, 8, 3, 3), "decode_head.conv_seg.weight": torch.randn(19, 8, 1, 1),
             "decode_head.conv_seg.bias": torch.zeros(19)}
    torch.save({"meta": {}, "state_dict": state}, tmp_path / "resnet.pth")
    refused(["dgmn2", tmp_path / "resnet.pth", "--out", tmp_path / "o"], capsys, tmp_path / "o",
            "not a DGMN2 checkpoint: it has no backbone.patch_embed1.conv3.weight")


def test_truncated_and_garbage_files_are_refused(models, tmp_path, capsys):
    src = mmseg_checkpoint(models["fpn"], tmp_path / "f.pth")
    data = src.read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[: len(data) // 2])
    refused(["dgmn2", tmp_path / "cut.pth", "--out", tmp_path / "o"], capsys, tmp_path / "o",
            "is not a readable PyTorch checkpoint")
    (tmp_path / "empty.pth").write_bytes(b"")
    refused(["dgmn2", tmp_path / "empty.pth", "--out", tmp_path / "o"], capsys, tmp_path / "o", "is empty")
    (tmp_path / "text.pth").write_bytes(b"model weights, honest")
    refused(["dgmn2", tmp_path / "text.pth", "--out", tmp_path / "o"], capsys, tmp_path / "o", "not a readable")
    refused(["dgmn2", tmp_path / "nope.pth", "--out", tmp_path / "o"], capsys, tmp_path / "o", "no such file")
    torch.save([torch.zeros(2)], tmp_path / "list.pth")
    refused(["dgmn2", tmp_path / "list.pth", "--out", tmp_path / "o"], capsys, tmp_path / "o", "holds a list")


class Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class Plain:
    pass


def test_pickles_with_code_are_refused_and_never_run(models, tmp_path, capsys):
    marker = tmp_path / "PWNED"
    state = dict(models["fpn"].state_dict())
    torch.save({"meta": {"x": Payload(marker)}, "state_dict": state}, tmp_path / "evil.pth")
    err = refused(["dgmn2", tmp_path / "evil.pth", "--out", tmp_path / "o"], capsys, tmp_path / "o",
                  "refusing evil.pth: it asks for the Python object")
    assert "system" in err and "nothing was run" in err and not marker.exists()
    torch.save({"state_dict": state, "meta": Plain()}, tmp_path / "obj.pth")
    err = refused(["dgmn2", tmp_path / "obj.pth", "--out", tmp_path / "o"], capsys, tmp_path / "o", "refusing obj.pth")
    assert "Plain" in err
    import pickle

    (tmp_path / "raw.pth").write_bytes(pickle.dumps({"a": Payload(marker)}))
    refused(["dgmn2", tmp_path / "raw.pth", "--out", tmp_path / "o"], capsys, tmp_path / "o", "refusing raw.pth")
    assert not marker.exists()


def test_wrong_shapes_missing_and_unexpected_tensors_are_named(models, tmp_path, capsys):
    state = {k: v.clone() for k, v in models["fpn"].state_dict().items()}
    state["backbone.block2.1.attn.qkv.weight"] = torch.zeros(48, 15)
    torch.save({"state_dict": state}, tmp_path / "shape.pth")
    refused(["dgmn2", tmp_path / "shape.pth", "--out", tmp_path / "o"], capsys, tmp_path / "o",
            "1 with the wrong shape (backbone.block2.1.attn.qkv.weight: (48, 15) in the file, (48, 16) expected)")
    state = {k: v.clone() for k, v in models["fpn"].state_dict().items()}
    del state["decode_head.scale_heads.3.2.bn.running_mean"]
    state["decode_head.extra.weight"] = torch.zeros(3)
    torch.save({"state_dict": state}, tmp_path / "keys.pth")
    err = refused(["dgmn2", tmp_path / "keys.pth", "--out", tmp_path / "o"], capsys, tmp_path / "o",
                  "1 missing (decode_head.scale_heads.3.2.bn.running_mean)")
    assert "1 unexpected (decode_head.extra.weight)" in err
    state = {k: v.clone() for k, v in models["fpn"].state_dict().items()}
    state["backbone.block1.0.attn.pos_emb.rel_height"] = torch.zeros(14, 3)  # head dim 3 does not divide 8
    torch.save({"state_dict": state}, tmp_path / "heads.pth")
    refused(["dgmn2", tmp_path / "heads.pth", "--out", tmp_path / "o"], capsys, tmp_path / "o", "disagree on the head dim")
    state = {k: v.clone() for k, v in models["fpn"].state_dict().items()}
    state["backbone.block1.0.mlp.fc1.weight"][0, 0] = float("nan")
    torch.save({"state_dict": state}, tmp_path / "nan.pth")
    refused(["dgmn2", tmp_path / "nan.pth", "--out", tmp_path / "o"], capsys, tmp_path / "o", "holds NaN")


def test_size_and_head_options_check_the_file(models, tmp_path, capsys):
    src = mmseg_checkpoint(models["setr_mla"], tmp_path / "m.pth")
    refused(["dgmn2", src, "--out", tmp_path / "o", "--size", "tiny"], capsys, tmp_path / "o",
            "--size tiny does not match the checkpoint: it holds DGMN2 (custom size) + SETR-MLA")
    refused(["dgmn2", src, "--out", tmp_path / "o", "--head", "fpn"], capsys, tmp_path / "o",
            "--head fpn does not match the checkpoint: it holds DGMN2 (custom size) + SETR-MLA (decided by decode_head.mlahead.*)")
    with pytest.raises(ConvertError, match="--size 'huge' is not a DGMN2 size"):
        infer_dgmn2(dict(models["setr_mla"].state_dict()), size="huge")


def test_existing_files_are_kept_unless_forced(models, tmp_path, capsys):
    src = mmseg_checkpoint(models["fpn"], tmp_path / "f.pth")
    assert run(["dgmn2", src, "--out", tmp_path / "o", "--name", "x"], capsys)[0] == 0
    before = (tmp_path / "o" / "x.safetensors").read_bytes()
    rc, _, err = run(["dgmn2", src, "--out", tmp_path / "o", "--name", "x"], capsys)
    assert rc == 2 and "exists; pass --force" in err
    assert run(["dgmn2", src, "--out", tmp_path / "o", "--name", "x", "--force"], capsys)[0] == 0
    assert (tmp_path / "o" / "x.safetensors").read_bytes() == before
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["x.json", "x.safetensors"]  # no temporary left
    rc, _, err = run(["dgmn2", src, "--out", tmp_path / "o", "--name", "../up"], capsys)
    assert rc == 2 and "not a usable checkpoint name" in err


def test_the_command_line_entry_point(models, tmp_path):
    src = mmseg_checkpoint(models["fpn"], tmp_path / "f.pth")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    ok = subprocess.run([sys.executable, "-m", "dgmn.convert", "dgmn2", str(src), "--out", str(tmp_path / "o")],
                        capture_output=True, text=True, env=env, timeout=300)
    assert ok.returncode == 0 and "wrote" in ok.stdout, ok.stderr
    (tmp_path / "bad.pth").write_bytes(b"\x80\x04truncated")
    bad = subprocess.run([sys.executable, "-m", "dgmn.convert", "dgmn2", str(tmp_path / "bad.pth"), "--out", str(tmp_path / "p")],
                         capture_output=True, text=True, env=env, timeout=300)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and not (tmp_path / "p").exists()
