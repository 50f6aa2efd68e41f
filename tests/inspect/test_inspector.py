import numpy as np
import pytest
import torch

from dgmn import DGMN
from dgmn.inspect import Inspector
from dgmn.models import build_segmenter, insert_dgmn, resnet18
from dgmn.ops import dynamic_aggregate

from ..ops.loop_reference import bilinear


def walked_layer(seed=0, **cfg):
    torch.manual_seed(seed)
    layer = DGMN(8, **cfg).double().eval()
    with torch.no_grad():
        for c in layer.walk_convs or []:
            c.weight.normal_(std=0.3)
            c.bias.uniform_(-3, 3)
    return layer


@pytest.mark.parametrize("cfg", [dict(dilations=(1, 3), groups=2), dict(dilations=(2,), groups=0), dict(dilations=(1, 2), groups=4, iterations=2)])
def test_reported_nodes_are_what_the_op_samples(cfg):
    layer = walked_layer(**cfg)
    f = torch.randn(1, 8, 9, 11, dtype=torch.float64)
    ins = Inspector(layer)
    ins.run(f)
    h = f  # the input of the last iteration
    for _ in range(layer.iterations - 1):
        h = torch.relu(f + layer.alpha * layer.message(h, layer.sample_graph(h)))
    graphs = layer.sample_graph(h)
    for (y, x) in [(0, 0), (4, 5), (8, 10)]:
        q = ins.query(y, x)[next(iter(ins.layers))]
        assert q["feature_pixel"] == [y, x]
        for s, g in enumerate(graphs):
            xs = layer.message_transforms[s](h)
            want = dynamic_aggregate(xs, g.offset, g.weight, (g.dilation,), 3, impl="reference")[0, :, y, x]
            got = np.zeros(8)
            G = len(q["nodes"][0]["weight"])
            for n in (n for n in q["nodes"] if n["rate"] == s):
                w = np.repeat(np.array(n["weight"]), 8 // G)
                got += w * bilinear(xs[0].detach().numpy(), *n["sampled"])
                assert np.allclose(np.add(n["uniform"], n["walk"]), n["sampled"])
            assert np.allclose(got, want.detach().numpy(), atol=1e-10)
        assert abs(sum(n["share"] for n in q["nodes"]) - 1) < 1e-9
    ins.close()


def test_fresh_layer_reports_the_uniform_grid_and_affinities_sum_to_one():
    layer = DGMN(8, dilations=(1, 4)).eval()
    ins = Inspector(layer)
    ins.run(torch.randn(1, 8, 10, 10))
    q = ins.query(5, 5)["DGMN"]
    for n in q["nodes"]:
        assert n["walk"] == [0.0, 0.0] and n["sampled"] == n["uniform"]
    for s in (0, 1):
        assert abs(sum(n["affinity"] for n in q["nodes"] if n["rate"] == s) - 1) < 1e-5


def test_nonlocal_row_and_image_coordinates_in_a_segmenter():
    torch.manual_seed(0)
    model = build_segmenter("small", "nonlocal", 8, channels=16, backbone_cfg={"width": 16}).eval()
    img = torch.randn(3, 64, 96)
    ins = Inspector(model)
    ins.run(img)
    q = ins.query(37, 70)["context"]
    assert q["feature_size"] == [8, 12] and q["feature_pixel"] == [round((37 + 0.5) / 8 - 0.5), round((70 + 0.5) / 8 - 0.5)]
    with torch.no_grad():
        f = model.reduce(model.backbone(img[None]))
        want = model.context.attention_row(f, *q["feature_pixel"])[0]
    assert torch.allclose(torch.tensor(q["attention"]), want, atol=1e-5)
    assert q["top"][0]["weight"] == pytest.approx(float(want.max()), abs=1e-6)


def test_finds_layers_inserted_into_a_resnet_and_reports_diagnostics():
    r = insert_dgmn(resnet18(), "layer4", dilations=(1, 2), groups=4)
    ins = Inspector(r)
    assert len(ins.layers) == 4
    ins.run(torch.randn(1, 3, 48, 48))
    name = next(iter(ins.layers))
    d = ins.diagnostics(name)
    assert len(d["rates"]) == 2 and d["rates"][0]["walk_length_max"] == 0.0 and d["rates"][0]["outside_fraction"] > 0
    assert d["warnings"] == []
    assert len(ins.query(10, 10)) == 4


def test_diagnostics_warn_about_nan_and_collapsed_walks():
    layer = DGMN(8, dilations=(1,)).eval()
    ins = Inspector(layer)
    ins.run(torch.randn(1, 8, 6, 6))
    rec = ins.records["DGMN"]
    g = rec.iterations[-1][0]
    # walks that pull every node onto the centre pixel, and one NaN
    K = 9
    off = torch.zeros(K, 2, 6, 6)
    for k in range(K):
        ky, kx = divmod(k, 3)
        off[k, 0], off[k, 1] = -(ky - 1), -(kx - 1)
    off[0, 0, 0, 0] = float("nan")
    rec.iterations[-1][0] = g._replace(offset=off.view(2 * K, 6, 6))
    w = ins.diagnostics("DGMN")["warnings"]
    assert any("NaN" in m for m in w) and any("collapsed" in m for m in w)


def test_query_errors():
    ins = Inspector(DGMN(8, dilations=(1,)))
    with pytest.raises(ValueError, match="no image has been run yet"):
        ins.query(0, 0)
    ins.run(torch.randn(1, 8, 5, 5))
    with pytest.raises(ValueError, match="outside the 5×5 image"):
        ins.query(5, 0)
