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

``--timeline`` also copies the chosen run's training timeline (``<name>.timeline/``) beside it.

``python -m dgmn.train.seed_selection --reproduce runs/dgmn-full-s2/dgmn-full --out checkpoints --timeline``
replaces a shipped model by a re-run of its chosen seed (the same command, up to ``--out``): float sums at a fixed thread
count are exact on one kind of processor but differ between processors, so a re-run elsewhere gives other
tensors. The seed stays chosen by the recorded runs; the card's ``seed_selection.reproduction`` records the
re-run's validation and held-out mIoU next to the original run's, and its metrics and training block are the
re-run's.
"""
from __future__ import annotations

import argparse
import json
import shlex
import shutil
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


def copy_timeline(run: str | Path, out: str | Path, name: str) -> Path:
    """Copy run ``run``'s training timeline (``<run>.timeline/``) to ``out/<name>.timeline/`` (replacing one there)."""
    src, dst = Path(f"{run}.timeline"), Path(out) / f"{name}.timeline"
    if not (src / "index.json").is_file():
        raise FileNotFoundError(f"{src} holds no training timeline (index.json); train with train.timeline_steps: log")
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst)
    return dst


def same_command(a: str, b: str) -> bool:
    """Whether two training commands are the same run, up to the folder they write to (``--out``)."""
    def without_out(command: str) -> list[str]:
        words = shlex.split(command)
        return [w for i, w in enumerate(words) if w != "--out" and (i == 0 or words[i - 1] != "--out")]
    return without_out(a) == without_out(b)


def reproduce(run: str | Path, out: str | Path, val_seed: int = 2000, val_images: int = 500, timeline: bool = False) -> dict:
    """Replace the shipped ``out/<name>`` by ``run``, a re-run of its chosen seed with the same command; returns the
    card's ``seed_selection`` with its ``reproduction`` block. ValueError if ``run`` is another seed or command."""
    from ..models.checkpoint import read_card

    rec = evaluate_runs([run], val_seed, val_images)[0]
    shipped = read_card(Path(out) / f"{rec['name']}.json")
    sel = shipped.get("seed_selection") or {}
    chosen = next((r for r in sel.get("runs", []) if r["seed"] == sel.get("chosen_seed")), None)
    if chosen is None or rec["seed"] != chosen["seed"] or not same_command(rec["command"], chosen["command"]):
        raise ValueError(f"{run} is seed {rec['seed']} trained with {rec['command']!r}; the shipped {rec['name']} was chosen "
                         f"as seed {sel.get('chosen_seed')} trained with {chosen and chosen['command']!r} — re-run exactly that")
    summary = dict(sel, reproduction={
        "validation_miou": rec["validation_miou"], "heldout_miou": rec["heldout_miou"],
        "original": {"validation_miou": chosen["validation_miou"], "heldout_miou": chosen["heldout_miou"],
                     "git_commit": shipped["training"].get("git_commit"), "seconds": shipped["training"].get("seconds")},
        "why": "the shipped tensors are this re-run of the chosen seed (same command) on another processor: float sums "
               "at a fixed thread count are exact on one kind of processor only, so the tensors differ from the original run's",
    })
    model = rec["model"]
    save_model(model, Path(out) / rec["name"], dict(model.card, seed_selection=summary))
    if timeline:
        copy_timeline(run, out, rec["name"])
    return summary


def select(runs: list[str | Path], out: str | Path, val_seed: int = 2000, val_images: int = 500, timeline: bool = False) -> dict:
    """Write the median run of ``runs`` to ``out/<name>.{safetensors,json}`` (and its timeline with ``timeline``);
    returns its ``seed_selection``."""
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
    if timeline:
        copy_timeline(chosen["run"], out, chosen["name"])
    return summary


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m dgmn.train.seed_selection", description=__doc__.splitlines()[0])
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--runs", nargs="+", help="the final checkpoints of one model's seeds (paths, no suffix)")
    what.add_argument("--reproduce", metavar="RUN", help="a re-run of a shipped model's chosen seed (path, no suffix): replaces it")
    p.add_argument("--out", required=True, help="folder to write the chosen model to (e.g. checkpoints)")
    p.add_argument("--val-seed", type=int, default=2000, help="ContextScenes seed of the validation split")
    p.add_argument("--val-images", type=int, default=500)
    p.add_argument("--timeline", action="store_true", help="also copy the chosen run's training timeline")
    args = p.parse_args(argv)
    try:
        if args.reproduce:
            summary = reproduce(args.reproduce, args.out, args.val_seed, args.val_images, args.timeline)
        else:
            summary = select(args.runs, args.out, args.val_seed, args.val_images, args.timeline)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
