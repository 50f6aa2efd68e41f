import json
import math
import subprocess
import sys
from pathlib import Path

import torch

from dgmn.data import ContextScenes
from dgmn.evaluate import ConfusionMatrix, evaluate_model
from dgmn.models import build_segmenter, save_model

ROOT = Path(__file__).resolve().parents[2]


def test_confusion_matrix_iou():
    cm = ConfusionMatrix(3)
    pred = torch.tensor([0, 0, 1, 1, 2, 2])
    true = torch.tensor([0, 1, 1, 1, 255, 2])
    cm.update(pred, true)
    iou = cm.iou()
    assert iou[0] == 50.0 and math.isclose(iou[1], 100 * 2 / 3) and iou[2] == 100.0
    assert math.isclose(cm.miou(), (50 + 200 / 3 + 100) / 3)
    assert math.isnan(ConfusionMatrix(2).miou())


class Oracle(torch.nn.Module):
    """Predicts the true label map of scene i of a split (to check the evaluation plumbing)."""

    def __init__(self, ds):
        super().__init__()
        self.ds, self.calls = ds, 0

    def forward(self, x):
        labels = [self.ds.scene(self.calls + j).label for j in range(x.shape[0])]
        self.calls += x.shape[0]
        y = torch.from_numpy(__import__("numpy").stack(labels)).long()
        return torch.nn.functional.one_hot(y, 8).permute(0, 3, 1, 2).float()


def test_a_perfect_model_scores_100_everywhere():
    ds = ContextScenes(seed=9, length=12, size=64)
    m = evaluate_model(Oracle(ds), ds, batch_size=5)
    assert m["miou"] == 100.0 and m["pairs"]["house/boathouse"] == 100.0
    assert 0 < m["mixed"]["images"] <= 12 and m["mixed"]["miou"] == 100.0


def test_cli_json_contract(tmp_path):
    torch.manual_seed(0)
    model = build_segmenter("small", "none", 8, channels=16, backbone_cfg={"width": 16})
    ds = ContextScenes(seed=0)
    card = {"name": "t", "architecture": {"backbone": "small", "backbone_cfg": {"width": 16}, "context": "none", "channels": 16,
                                          "num_classes": 8, "context_cfg": {}},
            "classes": list(ds.classes), "palette": [list(c) for c in ds.palette],
            "normalization": {"mean": list(ds.mean), "std": list(ds.std)},
            "eval_split": {"dataset": "context-scenes", "seed": 77, "images": 6, "size": [64, 64]}}
    save_model(model, tmp_path / "t", card)
    out = subprocess.run([sys.executable, "-m", "dgmn.evaluate", "--checkpoint", str(tmp_path / "t"), "--json"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout)
    assert set(res["iou"]) == set(ds.classes) and isinstance(res["miou"], float) and res["seed"] == 77 and res["images"] == 6
    assert res["params"] == sum(p.numel() for p in model.parameters()) and res["macs"] > 0
    out2 = subprocess.run([sys.executable, "-m", "dgmn.evaluate", "--checkpoint", str(tmp_path / "t"), "--json", "--seed", "5", "--images", "4"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert json.loads(out2.stdout)["seed"] == 5 and json.loads(out2.stdout)["images"] == 4
    bad = subprocess.run([sys.executable, "-m", "dgmn.evaluate", "--checkpoint", str(tmp_path / "missing")],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "incomplete" in bad.stderr and "Traceback" not in bad.stderr
