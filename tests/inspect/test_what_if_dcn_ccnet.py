"""What-if edits on a deformable-convolution (DCN) and a criss-cross attention (CCNet) model (issue 15): each
result is what the model computes with the matching parameters changed; edits a module does not take are
refused with a message naming them."""
import copy

import numpy as np
import pytest
import torch

from dgmn.data import ContextScenes
from dgmn.inspect.explorer import Explorer
from dgmn.inspect.what_if import EditError, applicable_edits, parse_edits, what_if

from ..context_models import trained_like

SCENE = ContextScenes(seed=1000, size=(64, 96)).scene(1)
CARD = {"classes": list(ContextScenes.classes), "palette": [list(c) for c in ContextScenes.palette],
        "normalization": {"mean": list(ContextScenes.mean), "std": list(ContextScenes.std)}}
Y, X = 30, 50


def tiny(context, **cfg):
    # a context output large enough that edits move the decision
    return trained_like(context, offset_bias=2.0, gamma=2.0, conv_gain=4.0, **cfg)


@pytest.fixture(scope="module")
def explorer():
    e = Explorer(checkpoint_dir="/nonexistent")
    e.add_model("dcn", tiny("dcn", dilation=2), CARD)
    e.add_model("ccnet", tiny("ccnet"), CARD)
    return e


@pytest.fixture(scope="module")
def analysis(explorer):
    return explorer.analyse(SCENE.image, ["dcn", "ccnet"], SCENE.label)


def logits_of(explorer, model):
    with torch.no_grad():
        return model(explorer.to_tensor(SCENE.image, CARD))[0].numpy()


def changed(explorer, name, change):
    m = copy.deepcopy(explorer.model(name))
    with torch.no_grad():
        change(m.context)
    return m


def probs(z):
    e = np.exp(z - z.max())
    return e / e.sum()


def drop_tap(k):
    def change(ctx):  # mask logit −10⁴ everywhere: sigmoid gives exactly 0, the tap reads nothing
        ctx.offset_mask.weight[18 + k].zero_()
        ctx.offset_mask.bias[18 + k] = -1e4
    return change


@pytest.mark.parametrize("name,edit,change", [
    ("dcn", {"op": "no_walks"}, lambda c: (c.offset_mask.weight[:18].zero_(), c.offset_mask.bias[:18].zero_())),
    ("dcn", {"op": "drop_node", "rate": 0, "node": 4}, drop_tap(4)),
    ("dcn", {"op": "no_context"}, lambda c: c.conv.weight.zero_()),
    ("ccnet", {"op": "no_context"}, lambda c: c.gamma.zero_()),
])
def test_image_scope_equals_the_changed_model(explorer, analysis, name, edit, change):
    r = what_if(explorer, analysis, name, Y, X, [edit], "image")
    ref = logits_of(explorer, changed(explorer, name, change))
    assert np.array_equal(r.label_map, ref.argmax(0))
    assert np.allclose(list(r.after.probabilities.values()), probs(ref[:, Y, X].astype(np.float64)), atol=1e-5)
    before, after = (np.array(list(d.probabilities.values())) for d in (r.before, r.after))
    assert np.abs(after - before).max() > 1e-4  # the edit did something at the pixel


def test_dropping_every_tap_is_no_context(explorer, analysis):
    every = what_if(explorer, analysis, "dcn", Y, X, [{"op": "drop_node", "rate": 0, "node": k} for k in range(9)], "image")
    none = what_if(explorer, analysis, "dcn", Y, X, [{"op": "no_context"}], "image")
    assert np.array_equal(every.label_map, none.label_map)
    assert np.allclose(list(every.after.probabilities.values()), list(none.after.probabilities.values()), atol=1e-6)


@pytest.mark.parametrize("name,edits", [
    ("dcn", [{"op": "drop_node", "rate": 0, "node": 2}, {"op": "no_walks"}]),
    ("dcn", [{"op": "no_context"}]),
    ("ccnet", [{"op": "no_context"}]),
])
def test_pixel_scope_equals_image_scope_at_the_pixel(explorer, analysis, name, edits):
    img = what_if(explorer, analysis, name, Y, X, edits, "image")
    pix = what_if(explorer, analysis, name, Y, X, edits, "pixel")
    assert np.allclose(list(pix.after.probabilities.values()), list(img.after.probabilities.values()), atol=1e-6)
    assert pix.changed_pixels <= img.changed_pixels


def test_ccnet_mask_attention_removes_the_keys_in_the_box(explorer, analysis):
    box = [0, 40, 96, 64]  # the ground band
    r = what_if(explorer, analysis, "ccnet", Y, X, [{"op": "mask_attention", "box": box}], "image")
    ref = changed(explorer, "ccnet", lambda c: None)
    from dgmn.inspect.coordinates import inside_box
    from dgmn.modules import MaskAttention

    ref.context.graph_edit = MaskAttention(keys=torch.from_numpy(inside_box(box, (8, 12), (64, 96))))  # the module's own edit
    assert np.array_equal(r.label_map, logits_of(explorer, ref).argmax(0))
    before, after = (np.array(list(d.probabilities.values())) for d in (r.before, r.after))
    assert np.abs(after - before).max() > 1e-6  # a random tiny model: small, but a change
    with pytest.raises(EditError, match="covers every position"):
        what_if(explorer, analysis, "ccnet", Y, X, [{"op": "mask_attention", "box": [0, 0, 96, 64]}], "pixel")


@pytest.mark.parametrize("name,edits,message", [
    ("dcn", [{"op": "drop_node", "rate": 1, "node": 0}], "one sampling grid (rate 0); rate must be 0"),
    ("dcn", [{"op": "no_walks", "rate": 2}], "rate must be 0"),
    ("dcn", [{"op": "drop_node", "rate": 0, "node": 9}], "has 9 taps; node must be 0…8"),
    ("dcn", [{"op": "drop_rate", "rate": 0}], "drop_rate needs a DGMN layer"),
    ("dcn", [{"op": "uniform_affinity"}], "uniform_affinity needs a DGMN layer"),
    ("dcn", [{"op": "mask_attention", "box": [0, 0, 10, 10]}], "needs a Non-local layer (or a criss-cross attention, CCNet, layer)"),
    ("ccnet", [{"op": "drop_node", "rate": 0, "node": 0}], "needs a DGMN layer (or a deformable-convolution, DCN, layer)"),
    ("ccnet", [{"op": "no_walks"}], "no_walks needs a DGMN layer"),
])
def test_edits_a_module_does_not_take_are_named(explorer, analysis, name, edits, message):
    with pytest.raises(EditError, match=message.replace("(", r"\(").replace(")", r"\)")):
        what_if(explorer, analysis, name, Y, X, edits)


def test_applicable_edits_per_module(explorer):
    edits = parse_edits([{"op": "drop_rate", "rate": 0}, {"op": "drop_node", "rate": 0, "node": 3}, {"op": "no_walks"},
                         {"op": "uniform_affinity"}, {"op": "no_context"}, {"op": "mask_attention", "box": [0, 0, 10, 10]}])
    kept, notes = applicable_edits(explorer, "dcn", edits, (64, 96))
    assert [e["op"] for e in kept] == ["drop_node", "no_walks", "no_context"] and len(notes) == 3
    kept, notes = applicable_edits(explorer, "ccnet", edits, (64, 96))
    assert [e["op"] for e in kept] == ["no_context", "mask_attention"] and all(n.startswith("ccnet: skipped") for n in notes)


def test_occlusion_reports_the_new_points_and_attention(explorer, analysis):
    occ = {"op": "occlude", "box": [0, 40, 96, 64], "fill": "mean"}
    r = what_if(explorer, analysis, "dcn", Y, X, [occ], "image")
    assert r.graph["context"].type == "dcn" and len(r.graph["context"].nodes) == 9
    r = what_if(explorer, analysis, "ccnet", Y, X, [occ], "image")
    assert r.to_json()["graph"]["context"]["type"] == "ccnet"
