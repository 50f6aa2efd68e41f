import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dgmn.models import load_model
from dgmn.train.__main__ import load_config, poly_lr

from ..data.test_files import make_cityscapes

ROOT = Path(__file__).resolve().parents[2]
TINY = [
    "model.backbone_cfg={width: 16}", "model.channels=16", "data.size=64", "data.crop=64", "eval.images=8",
    "train.batch_size=2", "train.checkpoint_every=2", "train.log_every=1", "train.workers=0", "train.threads=1",
]


def run_train(config, out, *sets, resume=False, env=None):
    cmd = [sys.executable, "-m", "dgmn.train", "--config", str(config), "--out", str(out)]
    for s in list(TINY) + list(sets):
        cmd += ["--set", s]
    if resume:
        cmd.append("--resume")
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_poly_schedule():
    assert poly_lr(0.01, 0, 100, 0.9) == 0.01
    assert poly_lr(0.01, 50, 100, 0.9) == pytest.approx(0.01 * 0.5**0.9)
    assert poly_lr(0.01, 100, 100, 0.9) == 0.0


def test_config_overrides_and_errors(tmp_path):
    cfg = load_config(ROOT / "configs" / "dgmn-full.yaml", ["train.steps=7", "model.context_cfg={dilations: [1]}"])
    assert cfg["train"]["steps"] == 7 and cfg["model"]["context_cfg"] == {"dilations": [1]}
    bad = tmp_path / "bad.yaml"
    bad.write_text("modle: {}\n")
    with pytest.raises(SystemExit, match="unknown config sections"):
        load_config(bad)


def test_few_steps_write_a_loadable_checkpoint_and_resume(tmp_path):
    res = run_train(ROOT / "configs" / "dgmn-full.yaml", tmp_path, "train.steps=3")
    card = json.loads((tmp_path / "dgmn-full.json").read_text())
    assert card["training"]["steps"] == 3 and card["metrics"]["images"] == 8 and res["miou"] == card["metrics"]["miou"]
    assert card["params"] > 0 and card["macs"] > 0 and card["training"]["command"].startswith("python -m dgmn.train")
    model = load_model(tmp_path / "dgmn-full")
    assert model(torch.zeros(1, 3, 64, 64)).shape == (1, 8, 64, 64)
    # resume continues from the saved step instead of starting again
    run_train(ROOT / "configs" / "dgmn-full.yaml", tmp_path, "train.steps=5", resume=True)
    assert json.loads((tmp_path / "state.json").read_text())["step"] == 5
    assert json.loads((tmp_path / "dgmn-full.json").read_text())["training"]["steps"] == 5


def test_same_seed_same_weights(tmp_path):
    run_train(ROOT / "configs" / "fcn.yaml", tmp_path / "a", "train.steps=2")
    run_train(ROOT / "configs" / "fcn.yaml", tmp_path / "b", "train.steps=2")
    from safetensors.torch import load_file

    a, b = load_file(str(tmp_path / "a" / "fcn.safetensors")), load_file(str(tmp_path / "b" / "fcn.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_two_process_torchrun_on_cpu(tmp_path):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29533", "-m", "dgmn.train",
           "--config", str(ROOT / "configs" / "dgmn-da.yaml"), "--out", str(tmp_path)]
    for s in TINY + ["train.steps=2"]:
        cmd += ["--set", s]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    assert (tmp_path / "dgmn-da.safetensors").is_file()
    assert json.loads((tmp_path / "dgmn-da.json").read_text())["training"]["processes"] == 2


@pytest.mark.parametrize("config", ["cityscapes-r101-dgmn.yaml", "cityscapes-r101-nonlocal.yaml"])
def test_cityscapes_recipe_builds_and_runs_two_steps_on_fabricated_data(tmp_path, config):
    make_cityscapes(tmp_path / "cs", "train", size=(40, 72))
    make_cityscapes(tmp_path / "cs", "val", cities=("frankfurt",), n=1, size=(40, 72))
    cfg = load_config(ROOT / "configs" / config)
    assert cfg["model"]["backbone"] == "resnet101" and cfg["train"]["steps"] == 40000 and cfg["data"]["crop"] == 769
    cmd = [sys.executable, "-m", "dgmn.train", "--config", str(ROOT / "configs" / config), "--out", str(tmp_path / "out")]
    for s in [f"data.root={tmp_path / 'cs'}", "data.crop=33", "train.steps=2", "train.batch_size=2", "train.workers=0",
              "train.checkpoint_every=1"]:
        cmd += ["--set", s]
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    card = json.loads((tmp_path / "out" / config.replace(".yaml", ".json")).read_text())
    assert card["classes"][0] == "road" and card["training"]["steps"] == 2
