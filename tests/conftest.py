"""Test setup. TRITON_INTERPRET must be set before triton is imported, so it is set here, first.

``tiny_checkpoints``: tiny checkpoints (random weights, ContextScenes classes) so the app's and the explorer's
tests do not depend on training."""
import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")
os.environ.setdefault("no_proxy", "127.0.0.1,localhost")

from dgmn.data import ContextScenes  # noqa: E402
from dgmn.models import build_segmenter, save_model  # noqa: E402

from .context_models import tiny_card  # noqa: E402


TINY = {
    "dgmn-full": ("dgmn", {"dilations": [1, 3], "groups": 4, "random_walk": True}),
    "fcn-nonlocal": ("nonlocal", {}),
    "fcn": ("none", {}),
}


@pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory):
    d = tmp_path_factory.mktemp("checkpoints")
    for name, (context, cfg) in TINY.items():
        torch.manual_seed(0)
        m = build_segmenter("small", context, 8, channels=16, backbone_cfg={"width": 16}, **cfg)
        if context == "dgmn":
            with torch.no_grad():
                for c in m.context.walk_convs:
                    c.bias.uniform_(-1.5, 1.5)
        save_model(m.eval(), d / name, tiny_card(name, context, cfg))
    return d




@pytest.fixture(scope="session")
def timeline_checkpoints(tiny_checkpoints, tmp_path_factory):
    """The tiny checkpoints, with a two-snapshot training timeline for dgmn-full (steps 0 and 10)."""
    import shutil

    from dgmn.models import load_model
    from dgmn.train.timeline import TimelineWriter

    d = tmp_path_factory.mktemp("timeline") / "checkpoints"
    shutil.copytree(tiny_checkpoints, d)
    model = load_model(d / "dgmn-full")
    writer = TimelineWriter(d / "dgmn-full.timeline", "dgmn-full", [0, 10], ContextScenes(seed=2000, length=2, size=64))
    final = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        for c in model.context.walk_convs:
            c.weight.zero_()
            c.bias.zero_()
    writer.snapshot(model, 0, model.card, "cpu")
    writer.add_loss(2.0)
    model.load_state_dict(final)
    writer.snapshot(model, 10, model.card, "cpu")
    return d
