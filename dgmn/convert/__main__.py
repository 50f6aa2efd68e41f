"""``python -m dgmn.convert dgmn2 CHECKPOINT.pth --out DIR [--name NAME] [--size S] [--head H] [--force]``

Converts a published DGMN2 Cityscapes checkpoint (mmsegmentation 0.x ``.pth``) to ``DIR/NAME.safetensors`` +
``DIR/NAME.json``; then ``dgmn.load_model("DIR/NAME")`` loads it. Exit status 0 on success, 2 with a one-line
message on any problem (nothing is written then).
"""
from __future__ import annotations

import argparse
import sys

from .dgmn2 import convert_dgmn2
from .dgmn2_arch import describe
from .errors import ConvertError
from ..models.dgmn2.config import HEADS, SIZES


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m dgmn.convert",
                                description="Convert another project's checkpoint to a dgmn checkpoint (.safetensors + .json card).")
    sub = p.add_subparsers(dest="family", required=True)
    d = sub.add_parser("dgmn2", help="a DGMN2 Cityscapes checkpoint (mmsegmentation 0.x .pth)",
                       description="Convert a DGMN2 Cityscapes checkpoint (mmseg 0.x .pth, read as plain data only). The "
                                   "architecture is read from the tensors; --size/--head only check it.")
    d.add_argument("checkpoint", help="the .pth file")
    d.add_argument("--out", required=True, help="output folder (created if missing)")
    d.add_argument("--name", default=None, help="checkpoint name (default dgmn2-SIZE-HEAD, e.g. dgmn2-tiny-fpn)")
    d.add_argument("--size", choices=SIZES, default=None, help="expected backbone size (checked against the file)")
    d.add_argument("--head", choices=HEADS, default=None, help="expected decode head (checked against the file)")
    d.add_argument("--force", action="store_true", help="replace NAME.safetensors / NAME.json if they exist")
    args = p.parse_args(argv)
    try:
        r = convert_dgmn2(args.checkpoint, args.out, args.name, args.size, args.head, args.force)
    except ConvertError as exc:
        print(f"dgmn.convert: {exc}", file=sys.stderr)
        return 2
    notes = []
    if r["ignored"]:
        notes.append(f"ignored: {', '.join(r['ignored'])} (not model weights)")
    if r["dropped"]:
        notes.append(f"dropped {len(r['dropped'])} training-only tensors ({r['dropped'][0]}, …)")
    size_mb = r["tensors"].stat().st_size / 1e6
    print(f"wrote {r['tensors']} ({size_mb:.1f} MB) and {r['card'].name}: {describe(r['config'])}, "
          f"{r['config'].num_classes} classes, {r['params']:,} parameters; classes from {r['classes_from']}"
          + ("; " + "; ".join(notes) if notes else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
