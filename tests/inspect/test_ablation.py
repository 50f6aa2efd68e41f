"""dgmn.inspect.ablation: class retention under image-scope edits, checked against what_if on each scene."""
import numpy as np

from dgmn.data import ContextScenes
from dgmn.inspect.ablation import class_retention, default_edits, main
from dgmn.inspect.explorer import Explorer
from dgmn.inspect.what_if import what_if


def test_retention_counts_what_the_edited_model_predicts(tiny_checkpoints):
    ex = Explorer(tiny_checkpoints)
    res = class_retention(ex, "dgmn-full", "grass", seed=3, images=2, size=(64, 64))
    labels = [label for label, _ in default_edits(ex, "dgmn-full")]
    assert list(res["retained"]) == labels == ["unedited", "no_context", "drop_rate 0 (dilation 1)", "drop_rate 1 (dilation 3)", "no_walks"]
    # recount one edit by hand
    ds, kept, total, used, i = ContextScenes(seed=3, size=(64, 64)), 0, 0, 0, 0
    while used < 2:
        sc = ds.scene(i)
        i += 1
        if not sc.mixed or not (sc.label == 2).any():
            continue
        used += 1
        a = ex.analyse(sc.image, ["dgmn-full"], sc.label)
        pred = what_if(ex, a, "dgmn-full", 0, 0, [{"op": "no_walks"}], "image").label_map
        kept += int((pred[sc.label == 2] == 2).sum())
        total += int((sc.label == 2).sum())
    assert res["pixels"] == total and np.isclose(res["retained"]["no_walks"], kept / total)


def test_cli_names_a_missing_class(capsys):
    assert main(["--checkpoint", "fcn", "--class", "spaceship", "--images", "1"]) == 2
    assert "has no class 'spaceship'" in capsys.readouterr().err
