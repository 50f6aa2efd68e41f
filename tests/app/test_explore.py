"""dgmn.explore on a small custom architecture (not a Segmenter): every panel and endpoint works for it."""
import cv2
import gradio as gr
import numpy as np
import pytest
import torch

import dgmn
from dgmn.data import ContextScenes

from .conftest import free_port

CLASSES = ["ground", "thing", "sky"]


class TinyNet(torch.nn.Module):
    """A user's own model: a stem, a NonLocal2d and a DGMN layer somewhere inside, logits at the input size."""

    def __init__(self):
        super().__init__()
        self.stem = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, stride=2, padding=1), torch.nn.ReLU())
        self.blocks = torch.nn.ModuleDict({"global": dgmn.NonLocal2d(8), "graph": dgmn.DGMN(8, dilations=(1, 2), groups=2)})
        self.head = torch.nn.Conv2d(8, len(CLASSES), 1)

    def forward(self, x):
        f = self.blocks["graph"](self.blocks["global"](self.stem(x)))
        return torch.nn.functional.interpolate(self.head(f), size=x.shape[-2:], mode="bilinear", align_corners=False)


def test_explore_serves_a_custom_model(tmp_path, tiny_checkpoints):
    from gradio_client import Client, handle_file

    torch.manual_seed(0)
    img = tmp_path / "scene.png"
    cv2.imwrite(str(img), cv2.cvtColor(ContextScenes(seed=3, size=(64, 96)).scene(0).image, cv2.COLOR_RGB2BGR))
    port = free_port()
    demo = dgmn.explore(TinyNet(), CLASSES, name="tiny-net", checkpoints=tiny_checkpoints, server_port=port,
                        prevent_thread_lock=True, quiet=True)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        res = client.predict(handle_file(str(img)), 40, 20, ["tiny-net", "fcn"], api_name="/inspect_xy")
        layers = res["tiny-net"]["layers"]
        assert res["tiny-net"]["class"] in CLASSES and set(layers) == {"blocks.global", "blocks.graph"}
        assert layers["blocks.graph"]["type"] == "dgmn" and len(layers["blocks.graph"]["nodes"]) == 18
        assert np.isclose(np.asarray(layers["blocks.global"]["attention"]).sum(), 1, atol=1e-4)
        seg = client.predict(handle_file(str(img)), ["tiny-net"], api_name="/segment")
        assert seg["tiny-net"]["classes"] == CLASSES and seg["tiny-net"]["shape"] == [64, 96]
    finally:
        demo.close()


def test_explore_unlaunched_gives_the_page_with_every_panel_working(tiny_checkpoints):
    from dgmn.app import build_page

    demo = dgmn.explore(TinyNet(), CLASSES, name="tiny-net", checkpoints=tiny_checkpoints, launch=False)
    assert isinstance(demo, gr.Blocks)
    picker = next(b for b in demo.blocks.values() if isinstance(b, gr.CheckboxGroup) and b.label.startswith("Models"))
    assert picker.value[0] == "tiny-net" and ("fcn", "fcn") in picker.choices  # next to the shipped (here: tiny) models
    page = build_page(_explorer(tiny_checkpoints), default_models=["tiny-net"])[1]
    image = ContextScenes(seed=3, size=(64, 96)).scene(0).image
    out = page.handlers["analyse"](image, ["tiny-net"])
    analysis = out[page.analysis]
    click = page.handlers["click"](analysis, ["tiny-net"], 0.5, True, None, None, gr.SelectData(None, {"index": [40, 20], "value": None, "selected": True}))
    assert click[page.status].startswith("Pixel (x=40, y=20) — tiny-net:")
    assert page.handlers["attribute"](analysis, ["tiny-net"], click[page.last_click], "Saliency", progress=lambda *a, **k: None)[page.status].startswith("Saliency")
    assert page.handlers["diagnostics"](analysis, ["tiny-net"])  # its DGMN layer has walk diagnostics


def _explorer(checkpoints):
    from dgmn.inspect.custom_model import custom_card
    from dgmn.inspect.explorer import Explorer

    ex = Explorer(checkpoints)
    ex.add_model("tiny-net", TinyNet(), custom_card(CLASSES, name="tiny-net"))
    return ex


def test_explore_refuses_what_is_not_a_model():
    with pytest.raises(TypeError, match="must be a torch.nn.Module"):
        dgmn.explore(lambda x: x, CLASSES, launch=False)
    with pytest.raises(ValueError, match="palette"):
        dgmn.explore(TinyNet(), CLASSES, palette=[[0, 0, 0]], launch=False)
