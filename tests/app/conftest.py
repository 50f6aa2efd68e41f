"""Tiny checkpoints (random weights, ContextScenes classes) so the app's tests do not depend on training."""
import pytest
import torch

from dgmn.data import ContextScenes
from dgmn.models import build_segmenter, save_model

TINY = {
    "dgmn-full": ("dgmn", {"dilations": [1, 3], "groups": 4, "random_walk": True}),
    "fcn-nonlocal": ("nonlocal", {}),
    "fcn": ("none", {}),
}


@pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory):
    d = tmp_path_factory.mktemp("checkpoints")
    ds = ContextScenes()
    for name, (context, cfg) in TINY.items():
        torch.manual_seed(0)
        m = build_segmenter("small", context, 8, channels=16, backbone_cfg={"width": 16}, **cfg)
        if context == "dgmn":
            with torch.no_grad():
                for c in m.context.walk_convs:
                    c.bias.uniform_(-1.5, 1.5)
        card = {"name": name, "classes": list(ds.classes), "palette": [list(c) for c in ds.palette],
                "normalization": {"mean": list(ds.mean), "std": list(ds.std)},
                "architecture": {"backbone": "small", "backbone_cfg": {"width": 16}, "context": context, "channels": 16,
                                 "num_classes": 8, "context_cfg": cfg}}
        save_model(m.eval(), d / name, card)
    return d


def plots(out: dict, prefix: str) -> list:
    """The values a handler gave the plots whose elem_id starts with ``prefix`` (e.g. "seg"), in slot order."""
    found = {k.elem_id: v for k, v in out.items() if getattr(k, "elem_id", None) and k.elem_id.startswith(prefix)
             and k.elem_id[len(prefix):].isdigit()}
    return [found[k] for k in sorted(found)]


def select(index):
    """What Gradio passes a .select handler: a click at [x, y] on an image, or the index of a gallery item."""
    import gradio as gr

    return gr.SelectData(None, {"index": index, "value": None, "selected": True})


@pytest.fixture()
def make_page(tiny_checkpoints):
    """make_page(examples=[(path, truth)], checkpoints=None, **build_page options) → the app's Page (handlers)."""
    from dgmn.app import build_page
    from dgmn.inspect.examples import ExampleSet
    from dgmn.inspect.explorer import Explorer

    def make(examples=(), checkpoints=None, **kw):
        return build_page(Explorer(checkpoints or tiny_checkpoints), ExampleSet(list(examples)), **kw)[1]

    return make
