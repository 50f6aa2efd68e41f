"""``python -m dgmn.evaluate --context-flow``: the flow over a split, in JSON and as a table."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dgmn.data import AMBIGUOUS_PAIRS, DECIDING_SURFACE, ContextScenes, to_tensor
from dgmn.inspect import Inspector
from dgmn.inspect.context_flow import context_flow
from dgmn.models import load_model

ROOT = Path(__file__).resolve().parents[2]
SPLIT = ("--seed", 77, "--images", 3)  # 128×128 scenes: 16×16 feature positions each


def evaluate(*args):
    return subprocess.run([sys.executable, "-m", "dgmn.evaluate", *map(str, args)], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_json_holds_the_flow_of_the_split(tiny_checkpoints):
    path = tiny_checkpoints / "dgmn-full"
    model = load_model(path)
    out = evaluate("--checkpoint", path, "--context-flow", "--json", *SPLIT)
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout)
    flow = res["context_flow"]
    assert flow["layer"] == "context" and flow["labels"] == "truth" and flow["images"] == 3 and res["images"] == 3
    assert sum(flow["positions"].values()) == 3 * 16 * 16  # every feature position of every image (no ignore labels)
    # the same flow, computed image by image through the library
    ds = ContextScenes(seed=77, length=3)
    total = None
    for i in range(3):
        ins = Inspector(model)
        ins.run(to_tensor(ds.scene(i).image))
        f = context_flow(ins, ds.scene(i).label, labels_from="truth", classes=ds.classes)
        total = f if total is None else total + f
    want = total.to_json()
    assert flow["positions"] == want["positions"] and set(flow["matrix"]) == set(want["matrix"])
    for target, row in want["matrix"].items():
        assert flow["matrix"][target] == pytest.approx(row, abs=1e-6)
        assert sum(flow["matrix"][target].values()) == pytest.approx(1, abs=1e-6)
        assert set(row) == set(ds.classes) | {"outside"}
    pairs = flow["pairs"]
    assert set(pairs) == {"house/boathouse", "car/boat"}
    assert pairs["house/boathouse"]["boathouse"]["surface"] == "water" and pairs["car/boat"]["car"]["surface"] == "road"
    for pair in pairs.values():
        for cls, v in pair.items():
            if cls in want["matrix"]:
                assert v["share"] == pytest.approx(want["matrix"][cls][v["surface"]], abs=1e-6)
            else:  # no position of this class in the split: no share (NaN → null)
                assert v["share"] is None
    plain = json.loads(evaluate("--checkpoint", path, "--json", *SPLIT).stdout)
    assert "context_flow" not in plain and plain["miou"] == pytest.approx(res["miou"], abs=1e-3)


def test_table_and_pairs_line(tiny_checkpoints):
    out = evaluate("--checkpoint", tiny_checkpoints / "fcn-nonlocal", "--context-flow", "--seed", 5, "--images", 2)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "context flow of layer 'context' (ground-truth labels, 2 images)" in text
    header = next(line for line in text.splitlines() if line.strip().startswith("target"))
    assert header.split() == ["target", "positions", *ContextScenes.classes, "outside"]
    rows = [line.split() for line in text.splitlines() if line.split() and line.split()[0] in ContextScenes.classes and len(line.split()) == 11]
    assert [r[0] for r in rows] == list(ContextScenes.classes)
    assert sum(int(r[1]) for r in rows) == 2 * 16 * 16
    for r in rows:
        if int(r[1]):
            assert sum(float(v) for v in r[2:]) == pytest.approx(1, abs=0.01)
    assert "fcn-nonlocal: share drawn from the deciding surface — house ← road" in text and "boat ← water" in text


def test_a_model_without_a_context_layer_gets_a_clear_message(tiny_checkpoints):
    out = evaluate("--checkpoint", tiny_checkpoints / "fcn", "--context-flow", *SPLIT)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "fcn has no DGMN or Non-local layer (context module: none (baseline))" in out.stderr


def test_an_unknown_layer_is_refused(tiny_checkpoints):
    out = evaluate("--checkpoint", tiny_checkpoints / "dgmn-full", "--context-flow", "--layer", "backbone", *SPLIT)
    assert out.returncode == 2 and "--layer 'backbone' is not a DGMN or Non-local layer of this model; choose one of: context" in out.stderr


def test_the_declared_deciding_surfaces_are_the_generators_rule():
    """Every class of every ambiguous pair has a surface, the two classes of a pair differ in it, and in
    generated scenes the ground strip below each building / vehicle is that surface."""
    assert ContextScenes.ambiguous_pairs == AMBIGUOUS_PAIRS and ContextScenes.deciding_surface == DECIDING_SURFACE
    for a, b in AMBIGUOUS_PAIRS:
        assert DECIDING_SURFACE[a] != DECIDING_SURFACE[b]
    classes = list(ContextScenes.classes)
    ds = ContextScenes(seed=3, size=128)
    seen = set()
    for i in range(20):
        sc = ds.scene(i)
        bottom = sc.label[-1]
        for cls, y0, y1, x0, x1 in sc.buildings:
            assert {classes[v] for v in bottom[x0:x1]} == {DECIDING_SURFACE[classes[cls]]}
            seen.add(classes[cls])
        for name in ("car", "boat"):
            cols = np.nonzero((sc.label == classes.index(name)).any(0))[0]
            assert {classes[v] for v in bottom[cols]} <= {DECIDING_SURFACE[name]}
            seen |= {name} if cols.size else set()
    assert seen == set(DECIDING_SURFACE)
