import json
import subprocess
import sys

import pytest
import torch

from dgmn import NonLocal2d, count_macs


def naive(block, f):
    u = block.pre(f)
    B, C, H, W = u.shape
    th, ph, g = (m(u).flatten(2) for m in (block.theta, block.phi, block.g))
    att = torch.softmax(th.transpose(1, 2) @ ph, dim=-1)  # (B, N, N)
    y = (att @ g.transpose(1, 2)).transpose(1, 2).reshape(B, -1, H, W)
    return u + block.out_bn(block.out(y)), att


def test_chunked_attention_equals_the_full_matrix():
    torch.manual_seed(0)
    block = NonLocal2d(8, chunk_size=7).double().eval()
    torch.nn.init.normal_(block.out_bn.weight)  # γ starts at 0: make the attention path visible
    f = torch.randn(2, 8, 6, 5, dtype=torch.float64)
    want, att = naive(block, f)
    assert torch.allclose(block(f), want, atol=1e-10)
    row = block.attention_row(f, 4, 3)
    assert torch.allclose(row.flatten(1), att[:, 4 * 5 + 3], atol=1e-12)
    assert torch.allclose(row.sum((1, 2)), torch.ones(2, dtype=torch.float64))


def test_parameters_and_macs_match_table_1a():
    block = NonLocal2d(512)
    params = sum(p.numel() for p in block.parameters())
    assert abs(params / 1e6 - 2.88) / 2.88 <= 0.03
    assert abs(count_macs(block, (1, 512, 97, 97)) / 1e9 - 73.33) / 73.33 <= 0.05


def test_backward_runs():
    block = NonLocal2d(8)
    x = torch.randn(2, 8, 5, 7, requires_grad=True)
    block(x).sum().backward()
    assert torch.isfinite(x.grad).all()


def test_128x256_features_do_not_materialise_the_attention_matrix():
    # The full N×N matrix at N = 128·256 would take 4.3 GB in float32 alone, whatever C is.
    code = (
        "import resource, torch, json\n"
        "from dgmn import NonLocal2d\n"
        "torch.manual_seed(0)\n"
        "m = NonLocal2d(16).eval()\n"
        "with torch.no_grad(): y = m(torch.randn(1, 16, 128, 256))\n"
        "print(json.dumps({'ok': bool(torch.isfinite(y).all()), 'maxrss_kb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, check=True)
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["ok"] and res["maxrss_kb"] < 1.5 * 1024 * 1024, res


def test_wrong_input_is_refused():
    with pytest.raises(ValueError, match=r"input must have shape \(B, 8, H, W\)"):
        NonLocal2d(8)(torch.zeros(1, 3, 4, 4))
    with pytest.raises(ValueError, match="outside the 4×4 feature map"):
        NonLocal2d(8).attention_row(torch.zeros(1, 8, 4, 4), 4, 0)
