"""The inspector on converted DGMN2 models (issue 18): every attention block recorded; per head the 9 positions are the
3×3 grid plus the recorded offsets, the weights are the softmax the block computed, content + position = logit, and
the weighted sum of the sampled values (an independent bilinear loop, float64) is the block's own message before the
projection. Sliding-window analysis: the averaged logits of mmseg's slide inference, every crop recorded, a pixel
answered from the crop whose centre is nearest."""
import copy
import json
import math

import numpy as np
import pytest
import torch

import dgmn
from dgmn.convert import convert_dgmn2
from dgmn.inspect import DGMN2Query, Inspector
from dgmn.inspect.explorer import Explorer, natural_key
from dgmn.inspect.inspector import position_vs_content, slide_settings, slide_windows
from dgmn.models.dgmn2 import slide_inference

from ..models.dgmn2.fixtures import fixture
from ..ops.loop_reference import bilinear

PIXELS = [(0, 0), (31, 47), (64, 96), (10, 80), (50, 3)]


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    out = tmp_path_factory.mktemp("dgmn2-inspect")
    convert_dgmn2(fixture("fpn.pth"), out, name="dgmn2-fpn")
    return out


@pytest.fixture(scope="module")
def model64(converted):
    return copy.deepcopy(dgmn.load_model(converted / "dgmn2-fpn")).double().eval()


@pytest.fixture(scope="module")
def image64():
    torch.manual_seed(3)
    return torch.randn(1, 3, 65, 97, dtype=torch.float64)


@pytest.fixture(scope="module")
def inspected(model64, image64):
    ins = Inspector(model64)
    out = ins.run(image64)
    ins.close()
    _, internals = model64.attention_internals(image64)
    return ins, out, internals


def block_name(key: str) -> str:  # the segmenter's "block{s}.{i}" → the inspector's "stage s, block i+1"
    s, i = key[len("block"):].split(".")
    return f"stage {s}, block {int(i) + 1}"


def test_every_block_is_recorded(inspected, model64, image64):
    ins, out, internals = inspected
    names = [block_name(k) for k in model64.attention_blocks()]
    assert list(ins.records) == names == list(ins.dgmn2_blocks)
    assert len(names) == 6  # the fixture's depths 2, 1, 2, 1
    with torch.no_grad():
        assert torch.equal(out, model64(image64))  # recording changes nothing
    q = ins.query(10, 20)
    assert list(q) == names and all(isinstance(v, DGMN2Query) for v in q.values())
    heads = {name: len(v.heads) for name, v in q.items()}
    assert heads == {"stage 1, block 1": 1, "stage 1, block 2": 1, "stage 2, block 1": 2, "stage 3, block 1": 5,
                     "stage 3, block 2": 5, "stage 4, block 1": 8}


@pytest.mark.parametrize("y,x", PIXELS)
def test_positions_weights_and_logits_are_the_blocks_own(inspected, y, x):
    ins, _, internals = inspected
    for key, it in internals.items():
        q = ins.query_dgmn2(block_name(key), y, x)
        iy, ix = q.feature_pixel
        h, w = q.feature_size
        assert [h, w] == list(it.weights.shape[-2:]) and q.crop == [0, 0, 65, 97]
        for head in q.heads:
            hi = head.head
            assert len(head.nodes) == 9
            assert abs(sum(n.weight for n in head.nodes) - 1) < 1e-12
            for n in head.nodes:
                ky, kx = divmod(n.node, 3)
                assert n.grid == [iy + ky - 1, ix + kx - 1]
                assert n.sampled == [n.grid[0] + n.walk[0], n.grid[1] + n.walk[1]]  # grid + recorded offset
                assert np.allclose(n.walk, it.offsets[0, hi, n.node, :, iy, ix].numpy(), atol=1e-12)
                assert np.allclose(n.sampled, it.positions[0, hi, n.node, :, iy, ix].numpy(), atol=1e-12)
                assert n.content == pytest.approx(float(it.content[0, hi, n.node, iy, ix]), abs=1e-12)
                assert n.position == pytest.approx(float(it.position[0, hi, n.node, iy, ix]), abs=1e-12)
                assert n.logit == pytest.approx(n.content + n.position, abs=1e-12)
                assert n.weight == pytest.approx(float(it.weights[0, hi, n.node, iy, ix]), abs=1e-12)
                assert n.inside == (-1 < n.sampled[0] < h and -1 < n.sampled[1] < w)


@pytest.mark.parametrize("y,x", PIXELS)
def test_weighted_sampled_values_are_the_message_before_the_projection(inspected, y, x):
    ins, _, internals = inspected
    outside = 0
    for key, it in internals.items():
        q = ins.query_dgmn2(block_name(key), y, x)
        iy, ix = q.feature_pixel
        for head in q.heads:
            values = it.values[0, head.head].numpy()  # (d, h, w)
            m = sum(n.weight * bilinear(values, *n.sampled) for n in head.nodes)
            assert np.allclose(m, it.message[0, head.head, :, iy, ix].numpy(), atol=1e-10)
            outside += sum(not n.inside for n in head.nodes)
    assert outside > 0 or (y, x) == (31, 47)  # border pixels sample outside the map somewhere


def test_image_positions_follow_the_one_mapping(inspected):
    from dgmn.inspect.coordinates import feature_to_image, nearest_feature

    ins, _, _ = inspected
    q = ins.query_dgmn2("stage 2, block 1", 40, 70)
    assert q.feature_pixel == list(nearest_feature(40, 70, q.feature_size, (65, 97), align_corners=True))
    for n in q.heads[1].nodes:
        assert np.allclose(n.sampled_image, feature_to_image(*n.sampled, q.feature_size, (65, 97), align_corners=True))
        assert np.allclose(n.grid_image, feature_to_image(*n.grid, q.feature_size, (65, 97), align_corners=True))


def test_a_feature_position_is_drawn_at_its_receptive_fields_centre(model64):
    """On a 65 × 97 image (stage maps 17 × 25, 9 × 13, 5 × 7, 3 × 4) position i of a stride-S map is centred at pixel
    S·i: a change at one input pixel reaches the stage-1 features symmetrically around the position drawn there."""
    ins = Inspector(model64)
    ins.run(torch.zeros(1, 3, 65, 97, dtype=torch.float64))
    ins.close()
    for name, S in (("stage 1, block 1", 4), ("stage 2, block 1", 8), ("stage 3, block 1", 16)):
        q = ins.query_dgmn2(name, 2 * S, 3 * S)
        assert q.feature_pixel == [2, 3] and q.heads[0].nodes[4].grid_image == [2 * S, 3 * S]
    # stage 1's three 3×3 convs (strides 2, 1, 2): the pixels its position (2, 3) sees are centred on (8, 12)
    embed = model64.backbone.patch_embed1
    x = torch.zeros(1, 3, 65, 97, dtype=torch.float64, requires_grad=True)
    embed.conv3(embed.conv2(embed.conv1(x)))[0, :, 2, 3].sum().backward()
    ys, xs = np.nonzero(x.grad[0].abs().sum(0).numpy())
    assert ((ys.min() + ys.max()) / 2, (xs.min() + xs.max()) / 2) == (8, 12)


def test_position_vs_content_measure():
    c = torch.tensor([1.0, 2, 3, 4, 5, 6, 7, 8, 9])
    assert position_vs_content(c, torch.full((9,), 4.0))["position_share"] == 0.0
    assert position_vs_content(torch.zeros(9), c)["position_share"] == 1.0
    both = position_vs_content(c, 2 * c)
    assert both["position_share"] == pytest.approx(0.8) and both["content_share"] == pytest.approx(0.2)
    assert both["correlation"] == pytest.approx(1.0) and both["position_spread"] == pytest.approx(2 * both["content_spread"])
    assert position_vs_content(c, -c)["correlation"] == pytest.approx(-1.0)
    flat = position_vs_content(torch.ones(9), torch.ones(9))
    assert flat["position_share"] == 0.5 and flat["correlation"] is None


def test_head_summary_is_the_measure_of_its_nodes(inspected):
    ins, _, _ = inspected
    for head in ins.query_dgmn2("stage 3, block 2", 20, 30).heads:
        c = np.array([n.content for n in head.nodes])
        r = np.array([n.position for n in head.nodes])
        assert head.position_share == pytest.approx(r.var() / (c.var() + r.var()))
        assert head.content_share == pytest.approx(1 - head.position_share)
        assert 0 <= head.position_share <= 1


def test_json_shape(inspected):
    ins, _, _ = inspected
    j = json.loads(json.dumps(ins.query_dgmn2("stage 1, block 2", 5, 6).to_json()))
    assert list(j) == ["type", "stage", "block", "feature_size", "feature_pixel", "crop", "heads"]
    assert j["type"] == "dgmn2" and j["stage"] == 1 and j["block"] == 2
    head = j["heads"][0]
    assert set(head) == {"head", "nodes", "position_share", "content_share", "content_spread", "position_spread", "correlation"}
    assert set(head["nodes"][0]) == {"node", "grid", "walk", "sampled", "sampled_image", "inside", "weight", "content",
                                     "position", "logit"}


# sliding-window analysis ------------------------------------------------------------------------------------------
SLIDE = ((33, 41), (24, 30))  # 65×97 → 3 rows × 3 columns of crops


def test_slide_run_is_slide_inference_and_answers_from_the_nearest_crop(model64, image64):
    ins = Inspector(model64)
    out = ins.run(image64, slide=SLIDE)
    ins.close()
    assert torch.equal(out, slide_inference(model64, image64, *SLIDE))
    windows = slide_windows((65, 97), SLIDE)
    assert len(windows) == 9 and ins.crops == windows
    rec = ins.records["stage 2, block 1"]
    assert [c.box for c in rec.crops] == windows
    for y, x in [(0, 0), (40, 50), (64, 96), (20, 70)]:
        q = ins.query_dgmn2("stage 2, block 1", y, x)
        y1, x1, y2, x2 = q.crop
        centre = lambda b: (y - (b[0] + b[2] - 1) / 2) ** 2 + (x - (b[1] + b[3] - 1) / 2) ** 2  # noqa: E731
        assert centre(q.crop) == min(centre(b) for b in windows)
        # the same as inspecting that crop alone, shifted by its corner
        alone = Inspector(model64)
        alone.run(image64[:, :, y1:y2, x1:x2])
        alone.close()
        a = alone.query_dgmn2("stage 2, block 1", y - y1, x - x1)
        assert a.feature_pixel == q.feature_pixel and a.feature_size == q.feature_size
        for ha, hq in zip(a.heads, q.heads):
            for na, nq in zip(ha.nodes, hq.nodes):
                assert na.weight == nq.weight and na.sampled == nq.sampled
                assert np.allclose(np.add(na.sampled_image, [y1, x1]), nq.sampled_image)


def test_slide_keeps_each_crops_part_once_and_answers_every_pixel(model64, image64):
    ins = Inspector(model64)
    ins.run(image64, slide=SLIDE)
    ins.close()
    for name, rec in ins.records.items():
        kept = sum(c.content[0, 0].numel() for c in rec.crops)
        whole = sum(c.feature_size[0] * c.feature_size[1] for c in rec.crops)
        assert kept <= whole and (kept < 0.6 * whole or not name.startswith("stage 1"))  # overlaps not stored twice
    for y in range(65):
        for x in range(97):
            q = ins.query_dgmn2("stage 2, block 1", y, x)  # every pixel's position was kept
            assert q.crop[0] <= y < q.crop[2] and q.crop[1] <= x < q.crop[3]


def test_slide_progress_and_an_image_that_fits_one_crop(model64, image64):
    calls = []
    ins = Inspector(model64)
    ins.run(image64, slide=SLIDE, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(i, 9) for i in range(1, 10)]
    whole = ins.run(image64, slide=((769, 769), (513, 513)))
    ins.close()
    assert ins.crops == [(0, 0, 65, 97)] and len(ins.records["stage 1, block 1"].crops) == 1
    with torch.no_grad():
        assert torch.equal(whole, model64(image64))


def test_slide_settings_from_the_card():
    assert slide_settings({"inference": {"mode": "slide", "crop_size": [769, 769], "stride": [513, 513]}}) == ((769, 769), (513, 513))
    assert slide_settings({"inference": {"mode": "whole"}}) is None
    assert slide_settings({"classes": []}) is None
    assert slide_settings({"inference": {"mode": "slide", "crop_size": "big", "stride": 1}}) is None


def test_explorer_runs_slide_inference_and_counts_the_records(converted, tmp_path):
    import shutil

    d = tmp_path / "ck"
    shutil.copytree(converted, d)
    card = json.loads((d / "dgmn2-fpn.json").read_text())
    card["inference"].update(crop_size=[33, 41], stride=[24, 30])
    (d / "dgmn2-fpn.json").write_text(json.dumps(card))
    ex = Explorer(d)
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (65, 97, 3), dtype=np.uint8)
    calls = []
    a = ex.analyse(img, ["dgmn2-fpn"], progress=lambda name, done, total: calls.append((name, done, total)))
    res = a.results["dgmn2-fpn"]
    assert res.crops == 9 and calls[-1] == ("dgmn2-fpn", 9, 9) and len(calls) == 9
    model = ex.model("dgmn2-fpn")
    logits = slide_inference(model, ex.to_tensor(img, ex.card("dgmn2-fpn")), (33, 41), (24, 30))
    assert np.allclose(res.logits, logits[0].numpy(), atol=1e-5)
    held = sum(c.offsets.numel() + c.content.numel() + c.position.numel()
               for rec in res.inspector.records.values() for c in rec.crops) * 4
    assert a.nbytes() >= held > 0
    assert res.dgmn2_layers() == res.layers and res.walk_layers() == []
    answer = ex.inspect(a, 30, 40, ["dgmn2-fpn"])["dgmn2-fpn"]
    assert list(answer.layers) == res.layers and abs(sum(answer.probabilities.values()) - 1) < 1e-6
    assert len(answer.probabilities) == 19 and answer.class_name in card["classes"]
    one = ex.inspect(a, 30, 40, ["dgmn2-fpn"], layer="stage 3, block 2")["dgmn2-fpn"]
    assert list(one.layers) == ["stage 3, block 2"]


def test_layer_names_sort_numbers_by_value():
    names = ["stage 3, block 10", "stage 3, block 2", "stage 1, block 1", "context"]
    assert sorted(names, key=natural_key) == ["context", "stage 1, block 1", "stage 3, block 2", "stage 3, block 10"]
