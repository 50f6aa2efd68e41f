"""CrissCross2d (CCNet's recurrent criss-cross attention) against a dense computation with the masked N×N attention."""
import json
import subprocess
import sys

import pytest
import torch

from dgmn import count_macs
from dgmn.modules import CrissCross2d, MaskAttention, NoContext


def block(C=16, seed=0, **kw):
    torch.manual_seed(seed)
    m = CrissCross2d(C, **kw).double().eval()
    with torch.no_grad():
        m.gamma.fill_(0.7)  # γ starts at 0: make the attention path visible
        for conv in (m.query_conv, m.key_conv):
            conv.weight.mul_(3)  # peaked, not near-uniform, attention
    return m


def dense(m, f, keys=None):
    """Every pass with the full (B, N, N) attention restricted to each position's row and column (the position
    itself once), and optionally without the keys in ``keys`` ((H, W) bool). Returns (out, [A_r (B, N, N)])."""
    h = m.pre(f)
    B, C, H, W = h.shape
    N = H * W
    ys, xs = torch.arange(N) // W, torch.arange(N) % W
    allowed = (ys[:, None] == ys[None, :]) | (xs[:, None] == xs[None, :])  # (N, N): j on p's row or column
    if keys is not None:
        allowed = allowed & ~keys.flatten()[None, :]
    atts = []
    for _ in range(m.recurrence):
        t = h.flatten(2)  # (B, C, N)
        q = torch.einsum("oc,bcn->bon", m.query_conv.weight[:, :, 0, 0], t) + m.query_conv.bias[:, None]
        k = torch.einsum("oc,bcn->bon", m.key_conv.weight[:, :, 0, 0], t) + m.key_conv.bias[:, None]
        v = torch.einsum("oc,bcn->bon", m.value_conv.weight[:, :, 0, 0], t) + m.value_conv.bias[:, None]
        energy = torch.einsum("bcp,bcj->bpj", q, k).masked_fill(~allowed, float("-inf"))
        a = torch.softmax(energy, dim=-1)
        y = torch.einsum("bpj,bcj->bcp", a, v).view(B, C, H, W)
        h = h + m.gamma * y
        atts.append(a)
    return h, atts


def as_dense(att):
    """A CrossAttention (row (B, H, W, W), column (B, H, W, H)) as the (B, N, N) matrix, for the test only."""
    B, H, W, _ = att.row.shape
    full = torch.zeros(B, H, W, H, W, dtype=att.row.dtype)
    for y in range(H):
        for x in range(W):
            full[:, y, x, y, :] += att.row[:, y, x]
            full[:, y, x, :, x] += att.column[:, y, x]
    return full.view(B, H * W, H * W)


@pytest.mark.parametrize("size", [(5, 6), (1, 4), (4, 1), (3, 3)])
def test_both_passes_match_the_dense_masked_attention(size):
    m = block()
    f = torch.randn(2, 16, *size, dtype=torch.float64)
    want, want_atts = dense(m, f)
    with torch.no_grad():
        got, atts = m.forward_with_attention(f)
    assert len(atts) == 2
    torch.testing.assert_close(got, want.detach(), rtol=0, atol=1e-12)
    for att, a in zip(atts, want_atts):
        assert (att.column[:, torch.arange(size[0]), :, torch.arange(size[0])] == 0).all()  # p itself: in the row only
        torch.testing.assert_close(as_dense(att), a.detach(), rtol=0, atol=1e-12)


def test_effective_attention_and_per_pixel_internals_rebuild_the_output():
    m = block(seed=1)
    f = torch.randn(2, 16, 5, 6, dtype=torch.float64)
    with torch.no_grad():
        out, atts = m.forward_with_attention(f)
        _, (a1, a2) = dense(m, f)
        u = m.pre(f)
    B, C, H, W = u.shape
    Wv, bv, g = m.value_conv.weight[:, :, 0, 0].detach(), m.value_conv.bias.detach(), float(m.gamma.detach())
    for y, x in [(0, 0), (2, 3), (4, 5)]:
        p = y * W + x
        q = m.pixel_attention(atts, y, x)
        assert q.pixel == (y, x) and q.row.shape == (B, 2, W) and q.column.shape == (B, 2, H) and q.effective.shape == (B, H, W)
        cross = q.cross  # (B, R, H, W)
        torch.testing.assert_close(cross[:, 0].flatten(1), a1[:, p], rtol=0, atol=1e-12)  # pass 1 at p
        torch.testing.assert_close(cross[:, 1].flatten(1), a2[:, p], rtol=0, atol=1e-12)  # pass 2 at p
        torch.testing.assert_close(q.effective.flatten(1), (a2 @ a1)[:, p], rtol=0, atol=1e-12)  # the 2-hop product
        assert (q.effective > 0).all() and torch.allclose(q.effective.sum((1, 2)), torch.ones(B, dtype=torch.float64))
        # out(p) = u_p + γ(W_v·(A1_p·u) + b) + γ(W_v·(A2_p·u) + γ·W_v·(W_v·(E_p·u) + b) + b)   (attention rows sum to 1)
        def read(att_map):  # Σ_i att[i]·u_i: (B, C)
            return torch.einsum("bhw,bchw->bc", att_map, u)

        y1 = read(cross[:, 0]) @ Wv.T + bv
        y2 = read(cross[:, 1]) @ Wv.T + g * ((read(q.effective) @ Wv.T + bv) @ Wv.T) + bv
        torch.testing.assert_close(out[:, :, y, x], u[:, :, y, x] + g * y1 + g * y2, rtol=0, atol=1e-6)
    with torch.no_grad():
        torch.testing.assert_close(m.query(f, 2, 3).effective, m.pixel_attention(atts, 2, 3).effective)


def test_gradcheck_of_the_block():
    m = block(C=8, seed=2)
    f = torch.randn(1, 8, 3, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(m, (f,))
    m.train()
    m(f.detach()).sum().backward()
    assert m.gamma.grad is not None and m.query_conv.weight.grad.abs().sum() > 0


def run_edit(m, f, edit):
    m.graph_edit = edit
    try:
        with torch.no_grad():
            return m.forward_with_attention(f)
    finally:
        m.graph_edit = None


@pytest.mark.parametrize("chunk_size", [7, 12, 4096])  # the edit's mask asked for 1, 2 or all 5 query rows at a time
def test_mask_attention_removes_keys_in_both_passes_and_no_context_leaves_u(chunk_size):
    m = block(seed=3, chunk_size=chunk_size)
    f = torch.randn(1, 16, 5, 6, dtype=torch.float64)
    keys = torch.zeros(5, 6, dtype=torch.bool)
    keys[1:3, 2:5] = True
    want, want_atts = dense(m, f, keys)
    got, atts = run_edit(m, f, MaskAttention(keys=keys))
    torch.testing.assert_close(got, want.detach(), rtol=0, atol=1e-12)
    for att, a in zip(atts, want_atts):
        torch.testing.assert_close(as_dense(att), a.detach(), rtol=0, atol=1e-12)
    # limited to the queries in `where`: the others attend as unedited
    where = torch.zeros(5, 6, dtype=torch.bool)
    where[0, 3] = True
    _, plain = m.forward_with_attention(f)
    _, edited = run_edit(m, f, MaskAttention(keys=keys, where=where))
    assert torch.equal(edited[0].row[:, ~where], plain[0].row[:, ~where].detach())
    assert (edited[0].column[0, 0, 3, 1:3] == 0).all() and (plain[0].column[0, 0, 3, 1:3] > 0).all()
    # a query whose whole cross is masked gets no message (not NaN)
    full_cross = torch.zeros(5, 6, dtype=torch.bool)
    full_cross[2, :] = True
    full_cross[:, 3] = True
    got, atts = run_edit(m, f, MaskAttention(keys=full_cross))
    assert torch.isfinite(got).all() and atts[0].row[0, 2, 3].sum() == 0 and atts[0].column[0, 2, 3].sum() == 0
    got, _ = run_edit(m, f, NoContext())
    torch.testing.assert_close(got, m.pre(f).detach(), rtol=0, atol=0)


def test_attention_hook_sees_every_pass():
    m = block(C=8)
    seen = []
    handle = m.register_attention_hook(lambda layer, f, atts: seen.append([(a.row.shape, a.column.shape) for a in atts]))
    with torch.no_grad():
        m(torch.randn(1, 8, 3, 5, dtype=torch.float64))
    handle.remove()
    with torch.no_grad():
        m(torch.randn(1, 8, 3, 5, dtype=torch.float64))
    assert seen == [[((1, 3, 5, 5), (1, 3, 5, 3))] * 2]


def test_macs_count_the_convs_and_the_cross_products_only():
    C, H, W, R = 16, 7, 9, 2
    N, Ci = H * W, C // 8
    per_pass = N * (2 * C * Ci + C * C) + N * (H + W) * (Ci + C)  # q, k, v convs; energies and aggregation on the cross
    assert count_macs(CrissCross2d(C), (2, C, H, W)) == 2 * (N * C * C * 9 + R * per_pass)
    assert count_macs(CrissCross2d(C, recurrence=1), (1, C, H, W)) == N * C * C * 9 + per_pass


def test_128x256_features_never_materialise_n_by_n():
    # N = 128·256: an N×N float32 matrix alone is 4.3 GB; the cross attention is N·(H+W)·4 B = 50 MB per pass.
    code = (
        "import resource, torch, json\n"
        "from dgmn.modules import CrissCross2d, MaskAttention\n"
        "torch.manual_seed(0)\n"
        "m = CrissCross2d(16).eval()\n"
        "keys = torch.zeros(128, 256, dtype=torch.bool); keys[10:40, 20:90] = True\n"
        "with torch.no_grad():\n"
        "    y = m(torch.randn(1, 16, 128, 256))\n"
        "    m.graph_edit = MaskAttention(keys=keys); z = m(torch.randn(1, 16, 128, 256))\n"
        "print(json.dumps({'ok': bool(torch.isfinite(y).all() and torch.isfinite(z).all()),"
        " 'maxrss_kb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, check=True)
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["ok"] and res["maxrss_kb"] < 1.5 * 1024 * 1024, res


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="`reduction`=3 must be a positive int dividing channels=16"):
        CrissCross2d(16, reduction=3)
    with pytest.raises(ValueError, match="`recurrence` must be a positive int"):
        CrissCross2d(16, recurrence=0)
    with pytest.raises(ValueError, match=r"input must have shape \(B, 16, H, W\)"):
        CrissCross2d(16)(torch.zeros(1, 3, 4, 4))
    m = CrissCross2d(16)
    _, atts = m.forward_with_attention(torch.zeros(1, 16, 3, 4))
    with pytest.raises(ValueError, match="inside the 3×4 feature map"):
        m.pixel_attention(atts, 0, 4)
