"""Pick one model out of several training seeds without looking at the held-out split.

``python -m dgmn.train.seed_selection --runs runs/dgmn-da-s0/dgmn-da runs/dgmn-da-s1/dgmn-da ... --out checkpoints``

One training run of a small model is a noisy sample: on ContextScenes the same config trained with two
seeds can differ by 8 mIoU points. So every shipped model is trained with several seeds (same data, steps
and backbone; only ``train.seed`` differs), and the rule below picks one of them:

1. every run is evaluated on a *validation* split (ContextScenes, ``--val-seed``, default 2000; disjoint
   from the training scenes and from the held-out split named in the cards);
2. the run with the median validation mIoU is kept (for an even count, the lower of the two middle runs),
   i.e. a typical model, not the luckiest one;
3. its tensors are copied unchanged and its card gains a ``seed_selection`` block listing every run's seed,
   validation mIoU and held-out mIoU (which each run's card already holds), with the held-out mean and
   standard deviation over the seeds.

The held-out split is never used to choose; it only reports.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from ..data import ContextScenes
from ..evaluate.metrics import evaluate_model
from ..models import load_model, save_model

RULE = "median validation mIoU over training seeds (lower median for an even count); held-out split never used to choose"


def evaluate_runs(runs: list[str | Path], val_seed: int = 2000, val_images: int = 500) -> list[dict]:
    """Evaluate every run's model on the validation split. Returns one record per run, in the given order
    (seed, command, validation and held-out mIoU, and the loaded model)."""
    records = []
    for run in runs:
        model = load_model(run)
        card = model.card
        split = card["eval_split"]
        if val_seed == split["seed"]:
            raise ValueError(f"--val-seed {val_seed} is the held-out seed of {run}; choose another validation seed")
        val = ContextScenes(seed=val_seed, length=val_images, size=tuple(split["size"]))
        records.append({
            "run": str(run),
            "name": card["name"],
            "seed": card["training"]["config"]["train"]["seed"],
            "command": card["training"]["command"],
            "validation_miou": round(evaluate_model(model, val, batch_size=25)["miou"], 2),
            "heldout_miou": round(card["metrics"]["miou"], 2),
            "model": model,  # kept so the chosen one is not read again
        })
    names = {r["name"] for r in records}
    if len(names) != 1:
        raise ValueError(f"the runs hold different models {sorted(names)}; pass the seeds of one model at a time")
    if len({r["seed"] for r in records}) != len(records):
        raise ValueError("two runs have the same training seed; each run must use its own train.seed")
    return records


def median_run(records: list[dict]) -> dict:
    """The record with the median validation mIoU (the lower middle one for an even count)."""
    if not records:
        raise ValueError("no runs to choose from")
    ranked = sorted(records, key=lambda r: (r["validation_miou"], r["seed"]))
    return ranked[(len(ranked) - 1) // 2]


def select(runs: list[str | Path], out: str | Path, val_seed: int = 2000, val_images: int = 500) -> dict:
    """Write the median run of ``runs`` to ``out/<name>.{safetensors,json}``; returns its ``seed_selection``."""
    records = evaluate_runs(runs, val_seed, val_images)
    chosen = median_run(records)
    heldout = [r["heldout_miou"] for r in records]
    summary = {
        "rule": RULE,
        "validation_split": {"dataset": "context-scenes", "seed": val_seed, "images": val_images},
        "chosen_seed": chosen["seed"],
        "runs": [{k: r[k] for k in ("seed", "validation_miou", "heldout_miou", "command")} for r in records],
        "heldout_miou_mean": round(statistics.mean(heldout), 2),
        "heldout_miou_std": round(statistics.stdev(heldout), 2) if len(heldout) > 1 else 0.0,
    }
    model = chosen["model"]
    save_model(model, Path(out) / chosen["name"], dict(model.card, seed_selection=summary))
    return summary


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m dgmn.train.seed_selection", description=__doc__.splitlines()[0])
    p.add_argument("--runs", nargs="+", required=True, help="the final checkpoints of one model's seeds (paths, no suffix)")
    p.add_argument("--out", required=True, help="folder to write the chosen model to (e.g. checkpoints)")
    p.add_argument("--val-seed", type=int, default=2000, help="ContextScenes seed of the validation split")
    p.add_argument("--val-images", type=int, default=500)
    args = p.parse_args(argv)
    try:
        summary = select(args.runs, args.out, args.val_seed, args.val_images)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
