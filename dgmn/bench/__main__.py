"""Benchmarks: ``python -m dgmn.bench {op,layer,gpu,app,load,soak,first-click,dgmn2} [--json] [--repeats N] [--runs N] [--quick] [--minutes N]``.

Each prints a table of what it measured on this machine (and the machine: CPU, threads, torch version);
``--json`` prints the rows as JSON instead. ``op --gpu-compile`` compiles the Triton kernels for sm_80/sm_90
and reports registers and spills (no GPU needed); ``gpu`` validates and times the Triton op on a CUDA device
(without one it says so and exits 0). ``first-click`` times a fresh start of the app (empty kernel cache) to its
first answers (``--root DIR``: another checkout of the project). ``dgmn2`` times DGMN2-Tiny + FPN with the fused
sampled attention on and off (``--original DGMN2_SRC``: also DGMN2's own code, on the stand-ins).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys

import torch

from ..closed_pipe import ends_quietly_on_closed_pipe
from .table import format_table


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), cpu)
    except OSError:
        pass
    return dict(
        cpu=cpu, threads=torch.get_num_threads(), torch=torch.__version__,
        cuda=torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        omp_wait_policy=os.environ.get("OMP_WAIT_POLICY"),
    )


@ends_quietly_on_closed_pipe
def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m dgmn.bench", description=__doc__.splitlines()[0])
    p.add_argument("what", choices=["op", "layer", "gpu", "app", "load", "soak", "first-click", "dgmn2"], help="which benchmark to run")
    p.add_argument("--minutes", type=float, default=10, help="soak: how long to run")
    p.add_argument("--json", action="store_true", help="print the rows as JSON")
    p.add_argument("--repeats", type=int, default=None,
                   help="timed calls per measurement, median reported (default: 5; layer and gpu: 3)")
    p.add_argument("--runs", type=int, default=3, help="layer, gpu: times the whole set is measured (median and spread); first-click: fresh starts (median)")
    p.add_argument("--quick", action="store_true", help="only the smaller sizes")
    p.add_argument("--gpu-compile", action="store_true",
                   help="op: compile the Triton kernels for sm_80/sm_90 ahead of time and report registers and spills")
    p.add_argument("--root", default=None, help="first-click: the checkout of the project to start (default: this one)")
    p.add_argument("--original", default=None, metavar="DGMN2_SRC",
                   help="dgmn2: also time DGMN2's original code from this checkout/export (with tools/dgmn2_fixtures' stand-ins)")
    args = p.parse_args(argv)
    if args.gpu_compile and args.what != "op":
        p.error("--gpu-compile goes with op")
    if args.original and args.what != "dgmn2":
        p.error("--original goes with dgmn2")
    if args.repeats is None and args.what not in ("layer", "gpu", "dgmn2"):
        args.repeats = 5
    if args.what == "gpu" and not torch.cuda.is_available():
        print("python -m dgmn.bench gpu: no CUDA device here (torch.cuda.is_available() is False); nothing to validate")
        return 0
    if args.what == "op":
        from . import op as bench
    elif args.what == "layer":
        from . import layer as bench
    elif args.what == "gpu":
        from . import gpu as bench
    elif args.what == "app":
        from . import app as bench
    elif args.what == "first-click":
        from . import first_click as bench
    elif args.what == "dgmn2":
        from . import dgmn2 as bench
    else:
        from . import server as bench
    if args.what == "load":
        rows = bench.run_load()
    elif args.what == "soak":
        rows = bench.run_soak(args.minutes)
    elif args.what == "op" and args.gpu_compile:
        rows = bench.run_gpu_compile()
    elif args.what == "first-click":
        rows = bench.run(runs=args.runs or 1, root=args.root)
    elif args.what == "dgmn2":
        rows = bench.run(repeats=args.repeats or 3, quick=args.quick, runs=args.runs, original=args.original)
    elif args.what in ("layer", "gpu"):
        rows = bench.run(repeats=args.repeats or 3, quick=args.quick, runs=args.runs)
    else:
        rows = bench.run(repeats=args.repeats, quick=args.quick)
    info = machine()
    if args.json:
        print(json.dumps(dict(machine=info, benchmark=args.what, rows=rows), indent=1))
    else:
        print(f"# python -m dgmn.bench {' '.join(sys.argv[1:] if argv is None else argv)}")
        print("# " + ", ".join(f"{k}={v}" for k, v in info.items()))
        report = bench.gpu_compile_report if args.gpu_compile else getattr(bench, "report", None)
        if report is not None:
            for line in report(rows):
                print(line)
        elif hasattr(bench, "COLUMNS"):
            print(format_table(rows, bench.COLUMNS, {"size": bench.size_label} if hasattr(bench, "size_label") else {}))
            for line in bench.verdicts(rows):
                print(line)
        else:
            for r in rows:
                for k, v in r.items():
                    print(f"{k:>26}: {v:.1f}" if isinstance(v, float) else f"{k:>26}: {v}")
    return bench.status(rows) if hasattr(bench, "status") else 0


if __name__ == "__main__":
    sys.exit(main())
