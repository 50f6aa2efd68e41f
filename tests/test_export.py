import numpy as np
import pytest
import torch

from dgmn.export import export_onnx
from dgmn.models import build_segmenter

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
