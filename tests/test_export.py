import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from dgmn.export import export_onnx
from dgmn.models import build_segmenter

ROOT = Path(__file__).resolve().parents[1]
ort = pytest.importorskip("onnxruntime", reason="onnxruntime is in requirements-dev.txt")


@pytest.mark.parametrize("context, cfg", [("dgmn", dict(dilations=(1, 3), groups=4, random_walk=True)), ("nonlocal", {})])
def test_onnx_export_matches_pytorch(tmp_path, context, cfg):
    torch.manual_seed(0)
    model = build_segmenter("small", context, 8, channels=16, backbone_cfg={"width": 16}, **cfg).eval()
    if context == "dgmn":  # non-zero walks, so the exported graph really samples off the grid
        with torch.no_grad():
            for c in model.context.walk_convs:
                c.bias.uniform_(-2, 2)
    path = export_onnx(model, tmp_path / "m.onnx", (64, 80))
    x = torch.randn(1, 3, 64, 80)
    with torch.no_grad():
        want = model(x).numpy()
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"image": x.numpy()})[0]
    assert got.shape == want.shape and np.abs(got - want).max() <= 1e-4


def test_cli_exports_a_shipped_checkpoint_quietly(tmp_path):
    out = tmp_path / "fcn-nonlocal.onnx"
    res = subprocess.run([sys.executable, "-m", "dgmn.export", "--checkpoint", "fcn-nonlocal", "--onnx", str(out), "--size", "64", "96"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0 and res.stderr == "", res.stderr[-2000:]
    assert "input fixed at 1×3×64×96" in res.stdout
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert sess.run(None, {"image": np.zeros((1, 3, 64, 96), np.float32)})[0].shape == (1, 8, 64, 96)
    res = subprocess.run([sys.executable, "-m", "dgmn.export", "--checkpoint", "nope", "--onnx", str(out)],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 2 and "no checkpoint named 'nope'" in res.stderr


def test_without_onnx_the_cli_says_which_package_to_install(monkeypatch, tmp_path, capsys):
    from dgmn.export import main

    monkeypatch.setitem(sys.modules, "onnx", None)  # `import onnx` raises ImportError, as where it is not installed
    assert main(["--checkpoint", "fcn", "--onnx", str(tmp_path / "m.onnx")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "`pip install onnx`" in err and not list(tmp_path.iterdir())
