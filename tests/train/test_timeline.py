"""Training writes a timeline: snapshots from step 0, statistics that the snapshots reproduce, loading with the
checkpoints' refusals, and no snapshot listed as a model."""
import json
import math
from pathlib import Path

import pytest
import torch

from dgmn.data import ContextScenes
from dgmn.evaluate.metrics import evaluate_model
from dgmn.inspect import Inspector
from dgmn.models import list_checkpoints, load_timeline
from dgmn.modules import DGMN
from dgmn.modules.graph_stats import rate_statistics
from dgmn.train.timeline import timeline_steps

from .test_train import ROOT, run_train


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    run_train(ROOT / "configs" / "dgmn-full.yaml", out, "train.steps=6", "train.timeline_steps=[0, 2, 6]", "train.timeline_images=4",
              "model.context_cfg={dilations: [1, 2], groups: 4, random_walk: true}")
    return out


def test_steps_setting():
    assert timeline_steps("log", 3000) == [0, 10, 25, 50, 100, 250, 500, 1000, 2000, 3000]
    assert timeline_steps("off", 3000) == [] and timeline_steps([5, 0], 10) == [0, 5]
    with pytest.raises(ValueError, match="must lie in 0…10"):
        timeline_steps([11], 10)


def test_step_zero_is_the_fresh_layer_on_the_dilated_grid(run):
    snaps = load_timeline(run / "dgmn-full")
    assert [s.step for s in snaps] == [0, 2, 6] and not snaps.problems
    step, model, stats = snaps[0]
    layer = model.context
    assert all(torch.count_nonzero(p) == 0 for c in layer.walk_convs for p in (c.weight, c.bias))
    sc = ContextScenes(seed=3, size=(64, 64)).scene(0)
    ins = Inspector(model)
    ins.run(torch.from_numpy(sc.image).permute(2, 0, 1).float()[None] / 255)
    q = ins.query(30, 30)["context"]
    assert all(n.walk == [0.0, 0.0] and n.sampled == n.uniform for n in q.nodes)
    assert stats["layers"]["context"][0]["walk_length"] == 0 and stats["train_loss"] > 0


def test_the_index_statistics_are_what_the_snapshots_give(run):
    index = json.loads((run / "dgmn-full.timeline" / "index.json").read_text())
    val = ContextScenes(seed=2000, length=4, size=64)
    for step, model, stats in load_timeline(run / "dgmn-full"):
        seen = []
        h = model.context.register_graph_hook(lambda layer, f, history: seen.append(
            [rate_statistics(g.offset, g.affinity, g.dilation, layer.kernel_size) for g in history[-1]]))
        miou = evaluate_model(model, val, batch_size=16)["miou"]
        h.remove()
        assert miou == pytest.approx(stats["val_miou"], abs=1e-6)
        for s, rate in enumerate(stats["layers"]["context"]):
            for key in ("walk_length", "outside_fraction", "affinity_entropy", "collapsed_fraction"):
                assert rate[key] == pytest.approx(sum(b[s][key] for b in seen) / len(seen), abs=1e-6)
    assert [e["step"] for e in index["snapshots"]] == [0, 2, 6]
    last = load_timeline(run / "dgmn-full")[-1].model.state_dict()
    final = __import__("dgmn").load_model(run / "dgmn-full").state_dict()
    assert all(torch.equal(last[k], final[k]) for k in final)  # the last snapshot is the run's model


def test_a_corrupt_snapshot_is_refused_and_the_others_load(run, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    bad = copy / "dgmn-full.timeline" / "step-000002.safetensors"
    bad.write_bytes(bad.read_bytes()[:200])
    with pytest.warns(UserWarning, match="step 2 refused"):
        snaps = load_timeline(copy / "dgmn-full")
    assert [s.step for s in snaps] == [0, 6] and "truncated or corrupt" in snaps.problems[0]
    assert list_checkpoints(copy) == ["dgmn-full"]  # snapshots are not models, nor is the running snapshot "last"
