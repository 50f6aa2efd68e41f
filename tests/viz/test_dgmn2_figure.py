"""The DGMN2 figure (issue 18): a pure function of a DGMN2Query — per head its 9 nodes at the record's image
positions, area by weight, dotted offsets from the grid, hover with the logit's content and position terms; chosen
by layer_figure / answer_figure."""
import numpy as np
import plotly.graph_objects as go
import pytest
import torch

from dgmn.inspect import Inspector
from dgmn.inspect.records import ModelAnswer
from dgmn.viz import answer_figure, dgmn2_figure, layer_figure

from ..models.dgmn2.helpers import small_model

IMG = (np.random.default_rng(0).random((45, 52, 3)) * 255).astype(np.uint8)


@pytest.fixture(scope="module")
def queries():
    m = small_model("setr_mla", seed=1)
    ins = Inspector(m)
    torch.manual_seed(0)
    ins.run(torch.randn(1, 3, 45, 52))
    ins.close()
    return ins.query(2, 3)


def test_nodes_per_head_sized_by_weight_with_offsets(queries):
    q = queries["stage 2, block 2"]  # 2 heads
    fig = dgmn2_figure(IMG, q, (2, 3), title="m")
    for head in q.heads:
        pts = next(t for t in fig.data if (t.name or "").startswith(f"head {head.head + 1} "))
        assert np.allclose(pts.y, [n.sampled_image[0] for n in head.nodes]) and np.allclose(pts.x, [n.sampled_image[1] for n in head.nodes])
        sizes, weights = np.array(pts.marker.size), np.array([n.weight for n in head.nodes])
        assert np.array_equal(np.argsort(sizes, kind="stable"), np.argsort(weights, kind="stable"))
        assert list(pts.marker.symbol) == ["circle" if n.inside else "circle-open" for n in head.nodes]
        assert "content" in pts.text[0] and "position" in pts.text[0] and "offset (dy, dx)" in pts.text[0]
        assert f"position {100 * head.position_share:.0f}%" in pts.name
        lines = next(t for t in fig.data if t.name == f"offsets, head {head.head + 1}")
        starts = {(lines.x[i], lines.y[i]) for i in range(0, len(lines.x), 3)}
        assert starts <= {(n.grid_image[1], n.grid_image[0]) for n in head.nodes} and lines.line.dash == "dot"
    assert len({t.marker.color for t in fig.data if (t.name or "").startswith("head ")}) == 2
    assert not any((t.name or "").startswith("offsets") for t in dgmn2_figure(IMG, q, (2, 3), walks=False).data)
    assert any(not n.inside for n in q.heads[0].nodes + q.heads[1].nodes)  # a corner pixel: some nodes off the map


def test_chosen_by_layer_figure_and_answer_figure(queries):
    q = queries["stage 1, block 1"]
    fig = layer_figure(IMG, "dgmn2-x", "stage 1, block 1", q, (2, 3))
    assert "stage 1 block 1" in fig.layout.title.text and isinstance(fig, go.Figure)
    answer = ModelAnswer(class_name="a", class_index=0, layers=dict(queries), probabilities={"a": 1.0})
    assert "stage 1 block 1" in answer_figure(IMG, "dgmn2-x", answer, (2, 3)).layout.title.text


def test_the_crop_is_outlined_when_the_record_comes_from_one(queries):
    import dataclasses

    q = queries["stage 1, block 1"]
    assert not any(t.name == "crop (sliding window)" for t in dgmn2_figure(IMG, q, (2, 3)).data)  # the whole image
    part = dataclasses.replace(q, crop=[0, 0, 30, 40])
    crop = next(t for t in dgmn2_figure(IMG, part, (2, 3)).data if t.name == "crop (sliding window)")
    assert min(crop.x) == -0.5 and max(crop.x) == 39.5 and max(crop.y) == 29.5
