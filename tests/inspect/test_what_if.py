"""What-if edits on the shipped dgmn-full and fcn-nonlocal: each result is exactly what the model computes with
the matching parameters changed; pixel scope gives the image scope's probabilities at the pixel; bad edits
are named."""
import copy

import numpy as np
import pytest
import torch

from dgmn.data import ContextScenes
from dgmn.inspect.explorer import Explorer
from dgmn.inspect.what_if import EditError, applicable_edits, footprint_mask, parse_edits, what_if

SCENE = ContextScenes(seed=1000, size=(128, 256)).scene(1)  # mixed: houses and boathouses


@pytest.fixture(scope="module")
def explorer():
    return Explorer()


@pytest.fixture(scope="module")
def analysis(explorer):
    return explorer.analyse(SCENE.image, ["dgmn-full", "fcn-nonlocal", "fcn"], SCENE.label)


def boathouse_pixel():
    cls, y0, y1, x0, x1 = next(b for b in SCENE.buildings if b[0] == 5)
    return (y0 + y1) // 2, (x0 + x1) // 2


def logits_of(explorer, model, image=SCENE.image):
    with torch.no_grad():
        return model(explorer.to_tensor(image, explorer.card("dgmn-full")))[0].numpy()


def probs(z):
    e = np.exp(z - z.max())
    return e / e.sum()


def changed(explorer, name, change):
    m = copy.deepcopy(explorer.model(name))
    with torch.no_grad():
        change(m)
    return m


@pytest.mark.parametrize("edit,change", [
    ({"op": "drop_rate", "rate": 1}, lambda m: m.context.beta.__setitem__(1, 0.0)),
    ({"op": "no_walks", "rate": 2}, lambda m: (m.context.walk_convs[2].weight.zero_(), m.context.walk_convs[2].bias.zero_())),
    ({"op": "no_walks"}, lambda m: [(c.weight.zero_(), c.bias.zero_()) for c in m.context.walk_convs]),
    ({"op": "uniform_affinity"}, lambda m: [(c.weight[9 * m.context.groups:].zero_(), c.bias[9 * m.context.groups:].zero_())
                                            for c in m.context.filter_affinity_convs]),
])
def test_image_scope_equals_the_changed_model(explorer, analysis, edit, change):
    y, x = boathouse_pixel()
    r = what_if(explorer, analysis, "dgmn-full", y, x, [edit], "image")
    ref = logits_of(explorer, changed(explorer, "dgmn-full", change))
    assert np.array_equal(r.label_map, ref.argmax(0))
    assert np.allclose(list(r.after.probabilities.values()), probs(ref[:, y, x].astype(np.float64)), atol=1e-6)
    assert r.changed_pixels == int((ref.argmax(0) != analysis.results["dgmn-full"].prediction).sum())
    # pixel scope: the same probabilities at the pixel
    p = what_if(explorer, analysis, "dgmn-full", y, x, [edit], "pixel")
    assert np.allclose(list(p.after.probabilities.values()), list(r.after.probabilities.values()), atol=1e-6)
    assert p.changed_pixels <= r.changed_pixels and p.label_map is None


def test_no_context_equals_zero_messages_for_both_modules(explorer, analysis):
    y, x = boathouse_pixel()
    r = what_if(explorer, analysis, "dgmn-full", y, x, [{"op": "no_context"}], "image")
    m = explorer.model("dgmn-full")
    f = m.reduce(m.backbone(explorer.to_tensor(SCENE.image, explorer.card("dgmn-full"))))
    with torch.no_grad():
        h = torch.relu(f + m.context.alpha * m.context.output_conv.bias.view(1, -1, 1, 1))
        ref = torch.nn.functional.interpolate(m.classifier(h), size=(128, 256), mode="bilinear", align_corners=False)[0].numpy()
    assert np.allclose(list(r.after.probabilities.values()), probs(ref[:, y, x].astype(np.float64)), atol=1e-5)
    nl = what_if(explorer, analysis, "fcn-nonlocal", y, x, [{"op": "no_context"}], "image")
    mn = changed(explorer, "fcn-nonlocal", lambda m: (m.context.g.weight.zero_(), m.context.g.bias.zero_()))  # g = 0 ⇒ y = 0
    assert np.array_equal(nl.label_map, logits_of(explorer, mn).argmax(0))
    assert np.isclose(sum(nl.after.probabilities.values()), 1.0)


def test_mask_attention_against_an_independent_computation(explorer, analysis):
    """Non-local with the keys in the box removed, written out densely here from the block's own weights."""
    y, x = boathouse_pixel()
    box = [0, 96, 256, 128]  # the ground band: water and road
    r = what_if(explorer, analysis, "fcn-nonlocal", y, x, [{"op": "mask_attention", "box": box}], "image")
    m = explorer.model("fcn-nonlocal")
    nl = m.context
    with torch.no_grad():
        f = m.reduce(m.backbone(explorer.to_tensor(SCENE.image, explorer.card("fcn-nonlocal"))))
        u = nl.pre(f)
        h, w = u.shape[-2:]
        q, k, v = (c(u).flatten(2)[0].T.double() for c in (nl.theta, nl.phi, nl.g))
        centres_y = (np.arange(h) + 0.5) * 128 / h - 0.5
        centres_x = (np.arange(w) + 0.5) * 256 / w - 0.5
        inside = torch.from_numpy(((centres_y >= 96) & (centres_y < 128))[:, None] & ((centres_x >= 0) & (centres_x < 256))[None, :]).flatten()
        logits = q @ k.T
        logits[:, inside] = float("-inf")
        yv = (torch.softmax(logits, 1) @ v).T.reshape(1, nl.inner, h, w).float()
        out = u + nl.out_bn(nl.out(yv))
        ref = torch.nn.functional.interpolate(m.classifier(out), size=(128, 256), mode="bilinear", align_corners=False)[0].numpy()
    assert np.allclose(list(r.after.probabilities.values()), probs(ref[:, y, x].astype(np.float64)), atol=1e-5)
    assert (r.label_map != ref.argmax(0)).mean() < 1e-3  # ties at float32 round-off only


def test_occlusion_carries_the_new_graph_and_truth_gives_iou(explorer, analysis):
    y, x = boathouse_pixel()
    r = what_if(explorer, analysis, "dgmn-full", y, x, [{"op": "occlude", "box": [0, 100, 256, 128], "fill": "mean"}], "image")
    assert set(r.graph) == {"context"} and len(r.graph["context"].nodes) == 27
    assert set(r.iou) == {"before", "after"} and r.iou["before"]["boathouse"] > 0
    j = r.to_json(lambda lm: list(lm.shape))
    assert j["label_map"] == [128, 256] and j["before"]["class"] == "boathouse" and j["graph"]["context"]["type"] == "dgmn"
    assert what_if(explorer, analysis, "fcn", y, x, [{"op": "occlude", "box": [0, 100, 256, 128], "fill": "blur"}]).graph == {}


def test_drop_node_and_footprint(explorer, analysis):
    y, x = boathouse_pixel()
    mask = footprint_mask(y, x, (16, 32), (128, 256))
    assert 1 <= int(mask.sum()) <= 4
    r = what_if(explorer, analysis, "dgmn-full", y, x, [{"op": "drop_node", "rate": 2, "node": 7}], "pixel")
    assert abs(sum(r.after.probabilities.values()) - 1) < 1e-9 and r.before.class_name == "boathouse"


@pytest.mark.parametrize("edits,message", [
    ("not json", "not valid JSON"),
    ([], "at least one edit"),
    ([{"op": "explode"}], "unknown op"),
    ([{"op": "drop_rate"}], "missing rate"),
    ([{"op": "drop_rate", "rate": 1, "colour": 3}], "unknown field colour"),
    ([{"op": "drop_rate", "rate": 3}], "has 3 rate(s)"),
    ([{"op": "drop_rate", "rate": -1}], "integer ≥ 0"),
    ([{"op": "drop_node", "rate": 0, "node": 9}], "node must be 0…8"),
    ([{"op": "occlude", "box": [0, 0, 300, 10], "fill": "mean"}], "inside the 256×128 image"),
    ([{"op": "occlude", "box": [0, 0, 10, 10], "fill": "paint"}], "fill must be"),
    ([{"op": "mask_attention", "box": [0, 0, 10, 10]}], "needs a Non-local layer"),
    ([{"op": "drop_rate", "rate": 0, "layer": "head"}], "no context layer 'head'"),
])
def test_bad_edits_are_named(explorer, analysis, edits, message):
    with pytest.raises(EditError, match=message.replace("(", r"\(").replace(")", r"\)")):
        what_if(explorer, analysis, "dgmn-full", 10, 10, edits)


def test_edits_that_do_not_apply_are_skipped_with_a_note(explorer):
    kept, notes = applicable_edits(explorer, "fcn-nonlocal", parse_edits([{"op": "drop_rate", "rate": 0}, {"op": "no_context"}]), (128, 256))
    assert kept == [{"op": "no_context"}] and "needs a DGMN layer" in notes[0]
    with pytest.raises(EditError, match="scope must be"):
        what_if(explorer, None, "fcn", 1, 1, [{"op": "no_context"}], "everything")


@pytest.mark.parametrize("edits", [[{"op": "no_context"}], [{"op": "mask_attention", "box": [0, 96, 256, 128]}]])
def test_pixel_scope_equals_image_scope_for_non_local(explorer, analysis, edits):
    y, x = boathouse_pixel()
    img = what_if(explorer, analysis, "fcn-nonlocal", y, x, edits, "image")
    pix = what_if(explorer, analysis, "fcn-nonlocal", y, x, edits, "pixel")
    assert np.allclose(list(pix.after.probabilities.values()), list(img.after.probabilities.values()), atol=1e-6)


@pytest.mark.parametrize("name", ["dgmn-full", "fcn-nonlocal", "fcn"])
def test_inspect_probabilities_are_the_softmax_of_the_logits_at_the_pixel(explorer, analysis, name):
    y, x = boathouse_pixel()
    with torch.no_grad():
        z = explorer.model(name)(explorer.to_tensor(SCENE.image, explorer.card(name)))[0, :, y, x].double().numpy()
    got = explorer.inspect(analysis, y, x, [name])[name].probabilities
    assert list(got) == explorer.card(name)["classes"] and np.allclose(list(got.values()), probs(z), atol=1e-6)
    assert abs(sum(got.values()) - 1) < 1e-9
