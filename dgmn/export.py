"""Export a checkpoint to ONNX: ``python -m dgmn.export --checkpoint NAME_OR_PATH --onnx out.onnx [--size H W]``.

The export traces the pure-PyTorch reference of the aggregation op (``F.grid_sample``, ONNX GridSample,
opset ≥ 16), so the file runs anywhere onnxruntime does. Input: ``image`` (1, 3, H, W) normalised as the
model card says; output: ``logits`` (1, classes, H, W). The graph is traced at one input size and fixed to
it (the sampling grids depend on H and W); export again with ``--size H W`` for another size. The
tracer's warnings about exactly that are silenced, so the command prints only what it wrote.
"""
from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import torch

from .models import CheckpointError, load_model
from .ops import use_impl


ONNX_MISSING = ("ONNX export needs the `onnx` package, which requirements.txt does not install: "
                "`pip install onnx` (and `pip install onnxruntime` to run the file)")


def require_onnx() -> None:
    """Raise ``ImportError`` with :data:`ONNX_MISSING` if the ``onnx`` package is not installed."""
    try:
        import onnx  # noqa: F401  (torch.onnx.export needs it to write the file)
    except ImportError:
        raise ImportError(ONNX_MISSING) from None


def export_onnx(model: torch.nn.Module, path: str | Path, size=(128, 128), opset: int = 17) -> Path:
    require_onnx()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.cpu().eval()
    x = torch.zeros(1, 3, *size)
    with use_impl("reference"), torch.no_grad(), warnings.catch_warnings():
        # expected for a trace at one size: shape checks become constants, the legacy exporter is used on
        # purpose (GridSample), and Slice steps > 1 are not constant-folded
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message=r".*legacy TorchScript-based ONNX export.*")
        warnings.filterwarnings("ignore", message=r".*Constant folding.*")
        warnings.filterwarnings("ignore", message=r".*feature will be removed.*", category=DeprecationWarning)
        torch.onnx.export(model, (x,), str(path), input_names=["image"], output_names=["logits"], opset_version=opset, dynamo=False)
    return path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m dgmn.export", description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--onnx", required=True, help="output .onnx path")
    p.add_argument("--size", type=int, nargs=2, default=None, metavar=("H", "W"), help="input size (default: the card's)")
    args = p.parse_args(argv)
    try:
        require_onnx()
    except ImportError as exc:
        print(f"dgmn.export: {exc}", file=sys.stderr)
        return 2
    try:
        model = load_model(args.checkpoint)
    except CheckpointError as exc:
        print(f"dgmn.export: {exc}", file=sys.stderr)
        return 2
    size = tuple(args.size or model.card.get("eval_split", {}).get("size", (128, 128)))
    out = export_onnx(model, args.onnx, size)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB, input fixed at 1×3×{size[0]}×{size[1]}; "
          "other sizes: export again with --size H W)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
