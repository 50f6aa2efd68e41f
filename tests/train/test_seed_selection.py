import json
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from dgmn.data import ContextScenes
from dgmn.evaluate import evaluate_model
from dgmn.models import load_model
from dgmn.train.seed_selection import median_run, same_command

from .test_train import ROOT, run_train


def test_median_run_is_the_middle_one_by_validation_not_by_heldout():
    recs = [
        {"seed": 0, "validation_miou": 70.0, "heldout_miou": 99.0},
        {"seed": 1, "validation_miou": 60.0, "heldout_miou": 50.0},
        {"seed": 2, "validation_miou": 80.0, "heldout_miou": 10.0},
    ]
    assert median_run(recs)["seed"] == 0
    assert median_run(recs[:2])["seed"] == 1  # even count: the lower middle run
    assert median_run(recs[:1])["seed"] == 0
    with pytest.raises(ValueError, match="no runs"):
        median_run([])


def select(*args):
    cmd = [sys.executable, "-m", "dgmn.train.seed_selection", *map(str, args)]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)


def ship_three_seeds(tmp_path):
    """Three tiny fcn runs (seeds 0, 1, 2) and the seed selection shipping their median to tmp_path/shipped:
    (the runs' paths, the printed ``seed_selection``)."""
    runs = []
    for seed in (0, 1, 2):
        run_train(ROOT / "configs" / "fcn.yaml", tmp_path / f"s{seed}", "train.steps=3", f"train.seed={seed}")
        runs.append(tmp_path / f"s{seed}" / "fcn")
    res = select("--runs", *runs, "--out", tmp_path / "shipped", "--val-seed", 7, "--val-images", 6)
    assert res.returncode == 0, res.stderr
    return runs, json.loads(res.stdout)


def test_three_seeds_ship_the_median_with_every_seed_on_the_card(tmp_path):
    runs, summary = ship_three_seeds(tmp_path)

    # independent check: evaluate every run on the same validation split and take the median
    val = ContextScenes(seed=7, length=6, size=64)
    val_miou = {s: evaluate_model(load_model(r), val)["miou"] for s, r in zip((0, 1, 2), runs)}
    ranked = sorted(val_miou, key=lambda s: (round(val_miou[s], 2), s))
    assert summary["chosen_seed"] == ranked[1]
    assert [r["seed"] for r in summary["runs"]] == [0, 1, 2]
    for r in summary["runs"]:
        assert r["validation_miou"] == pytest.approx(val_miou[r["seed"]], abs=0.01)
        held = json.loads((tmp_path / f"s{r['seed']}" / "fcn.json").read_text())["metrics"]["miou"]
        assert r["heldout_miou"] == pytest.approx(held, abs=0.01)

    shipped = load_model(tmp_path / "shipped" / "fcn")
    assert shipped.card["seed_selection"] == summary
    assert shipped.card["training"]["config"]["train"]["seed"] == summary["chosen_seed"]
    a = load_file(str(tmp_path / "shipped" / "fcn.safetensors"))
    b = load_file(str(tmp_path / f"s{summary['chosen_seed']}" / "fcn.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

    # refusals: the held-out seed as validation, the same seed twice, a missing run
    res = select("--runs", *runs, "--out", tmp_path / "x", "--val-images", 6, "--val-seed", 1000)
    assert res.returncode == 2 and "held-out seed" in res.stderr and not (tmp_path / "x").exists()
    res = select("--runs", runs[0], runs[0], "--out", tmp_path / "x", "--val-seed", 7, "--val-images", 6)
    assert res.returncode == 2 and "same training seed" in res.stderr
    res = select("--runs", runs[0], tmp_path / "nothing" / "fcn", "--out", tmp_path / "x", "--val-seed", 7)
    assert res.returncode == 2 and "missing" in res.stderr


def test_a_re_run_of_the_chosen_seed_replaces_the_shipped_model_with_its_timeline(tmp_path):
    runs, summary = ship_three_seeds(tmp_path)
    chosen = next(r for r in summary["runs"] if r["seed"] == summary["chosen_seed"])
    seed = summary["chosen_seed"]
    other = next(r for r in runs if r != runs[seed])
    res = select("--reproduce", other, "--out", tmp_path / "shipped", "--val-seed", 7, "--val-images", 6)
    assert res.returncode == 2 and "re-run exactly that" in res.stderr  # another seed is no re-run

    run_train(ROOT / "configs" / "fcn.yaml", tmp_path / f"s{seed}", "train.steps=3", f"train.seed={seed}")  # the same command
    res = select("--reproduce", runs[seed], "--out", tmp_path / "shipped", "--val-seed", 7, "--val-images", 6, "--timeline")
    assert res.returncode == 0, res.stderr
    card = load_model(tmp_path / "shipped" / "fcn").card
    rep = card["seed_selection"]["reproduction"]
    assert rep["original"]["heldout_miou"] == chosen["heldout_miou"] and rep["heldout_miou"] == pytest.approx(card["metrics"]["miou"], abs=0.01)
    assert card["seed_selection"]["runs"] == summary["runs"] and card["training"]["command"] == chosen["command"]
    assert same_command("python -m dgmn.train --config c.yaml --out a --set x=1", "python -m dgmn.train --config c.yaml --out b --set x=1")
    assert not same_command("python -m dgmn.train --config c.yaml --out a --set x=1", "python -m dgmn.train --config c.yaml --out a --set x=2")
    index = json.loads((tmp_path / "shipped" / "fcn.timeline" / "index.json").read_text())
    last = index["snapshots"][-1]
    a = load_file(str(tmp_path / "shipped" / "fcn.timeline" / last["file"]))
    b = load_file(str(tmp_path / "shipped" / "fcn.safetensors"))
    assert last["step"] == 3 and a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
