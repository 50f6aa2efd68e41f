"""The benchmark command's own behaviour, not its timings: a quiet profiler, the GPU validation's verdicts (run on
the Triton interpreter here), and the gpu command on a machine without CUDA."""
import os
import subprocess
import sys
from pathlib import Path

import torch

from dgmn.bench import gpu
from dgmn.bench.measure import peak_memory
from dgmn.ops import dynamic_aggregate

ROOT = Path(__file__).resolve().parents[1]


def test_peak_memory_on_the_cpu_prints_nothing(capfd):
    """Kineto writes a `USDT: ... profiler_start/stop` line at every profile's start and stop: dropped."""
    for _ in range(3):
        assert peak_memory(lambda: torch.randn(256, 256) @ torch.randn(256, 256), torch.device("cpu")) >= 256 * 256 * 4
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_peak_memory_counts_what_an_op_allocates_and_frees_inside_itself():
    """The reference runs inside the custom op: its (B, C, S·K, H, W) node tensor is allocated and freed there, and
    the peak must include it (replaying the ops' "self" memory by start time reported only the output)."""
    B, C, H, W, dil = 1, 8, 16, 16, (1, 2)
    g = torch.Generator().manual_seed(0)
    x, off, w = torch.randn(B, C, H, W, generator=g), torch.randn(B, 36, H, W, generator=g), torch.randn(B, 18, H, W, generator=g)
    nodes = B * C * 18 * H * W * 4
    assert peak_memory(lambda: dynamic_aggregate(x, off, w, dil, impl="reference"), torch.device("cpu")) >= nodes
    assert peak_memory(lambda: dynamic_aggregate(x, off, w, dil, impl="cpu"), torch.device("cpu")) < nodes / 4


def test_gpu_command_without_cuda_says_so_in_one_line_and_exits_0():
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="")
    res = subprocess.run([sys.executable, "-m", "dgmn.bench", "gpu"], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0 and res.stderr == ""
    assert res.stdout.count("\n") == 1 and "no CUDA device" in res.stdout


def test_gpu_validation_verdicts_on_the_interpreter():
    """The checks `python -m dgmn.bench gpu` runs, on CPU tensors through the Triton interpreter (tiny shapes)."""
    rows = gpu.correctness("cpu", cases=[("tiny", 1, 4, 3, 4, (1, 2), 2, 3, True)], dtypes=("float32",))
    rows.append(gpu.gradcheck("cpu", case=("tiny", 1, 2, 3, 3, (1,), 1, 3, False), fast_mode=True))  # the GPU run: full
    assert all(r["ok"] for r in rows) and gpu.status(rows) == 0
    assert rows[0]["worst_rel_err"] <= 1e-5
    assert gpu.status(rows + [dict(rows[0], ok=False)]) == 1
    text = "\n".join(gpu.report(rows))
    assert "1/1 within tolerance" in text and "gradcheck 1×2×3×3 S=1 G=1 k=3, float64: passed" in text
