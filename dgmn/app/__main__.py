"""DGMN Explorer: ``python -m dgmn.app`` (also ``dgmn-explorer`` and ``python app.py`` in a clone).

    dgmn-explorer [--checkpoints DIR] [--host 127.0.0.1] [--port 7860] [--device auto|cpu|cuda]
"""
from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
# A server draws no windows. Gradio asks matplotlib for its backend around every event; left to choose, matplotlib
# imports pyplot to find one, about 0.7 s on the first click (this process only; dgmn.explore() leaves yours alone).
os.environ.setdefault("MPLBACKEND", "agg")


def port_number(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port: give a whole number from 1 to 65535")
    return int(text)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="dgmn-explorer", description="DGMN Explorer: click a pixel, see each model's graph for it")
    p.add_argument("--checkpoints", default=None, help="folder of .safetensors + .json checkpoints (default: the shipped ones)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (0.0.0.0 exposes the app to your network)")
    p.add_argument("--port", type=port_number, default=7860, help="1–65535 (default 7860)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from .address import PortBusy, listen_problem

    problem = listen_problem(args.host, args.port)  # before the heavy imports (Gradio, the models)
    if problem:
        print(f"dgmn-explorer: {problem}", file=sys.stderr)
        return 2
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        print("dgmn-explorer: --device cuda, but PyTorch sees no CUDA device here (torch.cuda.is_available() is "
              "False); use --device cpu, or auto (the default: CUDA when there is one)", file=sys.stderr)
        return 2

    from ..inspect.explorer import Explorer
    from ..models.checkpoint import training_folder_note
    from .launch import launch
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    note = training_folder_note(args.checkpoints) if args.checkpoints else None
    if note:
        print(note)
    try:
        launch(Explorer(args.checkpoints, device), server_name=args.host, server_port=args.port)
    except PortBusy as exc:
        print(f"dgmn-explorer: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
