"""The context flow (issue 11's definition, extended in issue 15) of a deformable convolution (shares |m_k|
normalised, at the sampled points) and of criss-cross attention (shares = the effective two-pass attention),
against slow loops from the raw records (CCNet: the dense N×N matrices built from each pass's row and column)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dgmn.data import ContextScenes, to_tensor
from dgmn.inspect import Inspector
from dgmn.inspect.context_flow import class_heat, context_flow

from ..context_models import trained_like
from .test_context_flow import label_at, slow_heat

CLASSES = list(ContextScenes.classes)
C = len(CLASSES)
SIZE = (96, 128)
TOL = 1e-6


def small_model(context, **cfg):
    return trained_like(context, offset_bias=3.0, gamma=1.0, **cfg)


@pytest.fixture(scope="module")
def scene():
    return ContextScenes(seed=5, length=1, size=SIZE).scene(0)


def run(model, scene):
    ins = Inspector(model)
    ins.run(to_tensor(scene.image))
    ins.close()
    return ins


def column(label):
    return C + 1 if label == 255 else label


def slow_taps(rec, L, iy, ix):
    """[(source column, share, py, px, inside)] of the K taps at (iy, ix): share |m_k| / Σ|m|, pos = grid + offset."""
    h, w = rec.feature_size
    ks, d = rec.kernel_size, rec.graph.dilation
    off, mask = rec.graph.offset[0], rec.graph.mask[0]
    mags = [abs(float(mask[k, iy, ix])) for k in range(ks * ks)]
    out = []
    for k in range(ks * ks):
        ky, kx = divmod(k, ks)
        py = iy + (ky - (ks - 1) / 2) * d + float(off[2 * k, iy, ix])
        px = ix + (kx - (ks - 1) / 2) * d + float(off[2 * k + 1, iy, ix])
        inside = -1 < py < h and -1 < px < w
        out.append((column(label_at(L, py, px, (h, w))) if inside else C, mags[k] / sum(mags), py, px, inside))
    return out


def dense(att):
    """The N×N matrix of one pass from its row (1, h, w, w) and column (1, h, w, h) parts, by loops."""
    _, h, w, _ = att.row.shape
    A = np.zeros((h * w, h * w))
    for y in range(h):
        for x in range(w):
            for x2 in range(w):
                A[y * w + x, y * w + x2] += float(att.row[0, y, x, x2])
            for y2 in range(h):
                A[y * w + x, y2 * w + x] += float(att.column[0, y, x, y2])
    return A


def slow_effective(rec):
    """E = A_R ··· A_1 (N, N), query rows."""
    E = dense(rec.attentions[-1])
    for att in reversed(rec.attentions[:-1]):
        E = E @ dense(att)
    return E


def slow_flow(rec, L):
    h, w = rec.feature_size
    sums, counts, outside = np.zeros((C, C + 2)), np.zeros(C, np.int64), 0
    E = slow_effective(rec) if hasattr(rec, "attentions") else None
    for iy in range(h):
        for ix in range(w):
            t = label_at(L, iy, ix, (h, w))
            if t == 255:
                continue
            counts[t] += 1
            if E is None:
                for col, share, *_, inside in slow_taps(rec, L, iy, ix):
                    sums[t, col] += share
                    outside += not inside
            else:
                for j, share in enumerate(E[iy * w + ix]):
                    sums[t, column(label_at(L, j // w, j % w, (h, w)))] += share
    return sums, counts, outside


@pytest.mark.parametrize("context", ["dcn", "ccnet"])
def test_flow_matches_the_slow_definition(context, scene):
    ins = run(small_model(context), scene)
    L = scene.label.copy()
    L[:, :10] = 255  # an ignored strip: skipped as a target, its own column as a source
    flow = context_flow(ins, L, labels_from="truth", classes=CLASSES)
    rec = ins.records[flow.layer]
    sums, counts, outside = slow_flow(rec, L)
    if context == "dcn":
        assert outside > 0  # some taps leave the map: "outside" is exercised
    assert flow.counts.tolist() == counts.tolist()
    assert np.abs((flow.sums.numpy() - sums) / np.maximum(counts, 1)[:, None]).max() < TOL
    present = counts > 0
    assert np.allclose(flow.matrix.numpy()[present].sum(1), 1, atol=TOL)
    if context == "ccnet":
        assert float(flow.sums[:, C].abs().max()) == 0  # attention never leaves the map
    some = context_flow(ins, L, labels_from="truth", classes=CLASSES, targets=["sky"])
    assert some.row("sky") == pytest.approx(flow.row("sky"), abs=TOL) and some.positions("grass") == 0


def test_dcn_class_heat_splats_the_shares_at_the_sampled_points(scene):
    ins = run(small_model("dcn"), scene)
    L = scene.label
    cls = CLASSES.index("sky")
    heat = class_heat(ins, L, cls, labels_from="truth", classes=CLASSES)
    rec = ins.records[heat.layer]
    want, n, outside = slow_heat(rec, L, cls, slow_taps)
    assert heat.positions == n > 0 and np.abs(heat.heat - want / n).max() < TOL
    assert heat.outside == pytest.approx(outside / n, abs=TOL) and heat.heat.sum() == pytest.approx(1 - heat.outside, abs=TOL)


def test_ccnet_class_heat_is_the_upsampled_mean_effective_attention(scene):
    ins = run(small_model("ccnet"), scene)
    L = scene.label
    cls = CLASSES.index("sky")
    heat = class_heat(ins, L, cls, labels_from="truth", classes=CLASSES)
    rec = ins.records[heat.layer]
    h, w = rec.feature_size
    E = slow_effective(rec)
    rows = [E[iy * w + ix] for iy in range(h) for ix in range(w) if label_at(L, iy, ix, (h, w)) == cls]
    mean = torch.tensor(np.mean(rows, axis=0)).view(1, 1, h, w)
    up = F.interpolate(mean, size=L.shape, mode="bilinear", align_corners=False)[0, 0].numpy()
    assert heat.positions == len(rows) > 0 and heat.outside == 0.0
    assert np.abs(heat.heat - up / up.sum()).max() < TOL and heat.heat.sum() == pytest.approx(1)
