from dgmn.inspect.model_cards import describe_context, model_cards_markdown, model_summaries
from dgmn.models import load_model

from ..models.test_checkpoint import tiny


def test_context_descriptions_follow_the_architecture():
    assert describe_context({"context": "nonlocal"}) == "Non-local"
    assert describe_context({"context": "none"}) == "none (baseline)"
    assert describe_context({"context": "dgmn", "context_cfg": {"dilations": [1], "groups": 0, "random_walk": False}}) \
        == "DGMN: rate 1; dynamic affinity"
    # unspecified entries take DGMN's own defaults (5 rates, G=4, walks)
    assert describe_context({"context": "dgmn"}) == \
        "DGMN: rates 1, 6, 12, 24, 36; dynamic affinity; dynamic weights (G=4); learned random walks"


def test_shipped_cards_are_summarised_with_their_own_figures():
    rows = {r["name"]: r for r in model_summaries()}
    assert {"fcn", "fcn-gpool", "fcn-nonlocal", "dgmn-da", "dgmn-da-dw", "dgmn-full"} <= set(rows)
    for name, row in rows.items():
        card = load_model(name).card
        assert row["problem"] is None and row["miou"] == card["metrics"]["miou"] and row["params"] == card["params"]
    assert "over 3 seeds" in rows["dgmn-da"]["seeds"]
    md = model_cards_markdown()
    assert md.count("\n| `") == len(rows) and "learned random walks" in md


def test_own_checkpoints_without_metrics_and_broken_cards(tmp_path):
    tiny(tmp_path, "mine")
    (tmp_path / "broken.json").write_text("{not json")
    (tmp_path / "broken.safetensors").write_bytes(b"")
    rows = {r["name"]: r for r in model_summaries(tmp_path)}
    assert rows["mine"]["problem"] is None and rows["mine"]["miou"] is None and rows["mine"]["params"] is None
    assert "not valid JSON" in rows["broken"]["problem"]
    md = model_cards_markdown(tmp_path)
    assert "| `mine` | DGMN: rates 1, 2; dynamic affinity; dynamic weights (G=4); learned random walks | — |" in md
    assert "card unreadable" in md
    assert model_cards_markdown(tmp_path / "empty") == "No checkpoints in this folder."


def test_a_figure_measured_elsewhere_says_where_it_comes_from(tmp_path):
    """A converted DGMN2 card carries its authors' Cityscapes mIoU: the table shows its split and source beside it,
    so it is not read as one of our held-out scores."""
    import json

    tiny(tmp_path, "theirs")
    card = json.loads((tmp_path / "theirs.json").read_text())
    card["metrics"] = {"miou": 79.2, "split": "Cityscapes val (500 images)", "source": "reported in DGMN2's README (not measured here)"}
    (tmp_path / "theirs.json").write_text(json.dumps(card))
    md = model_cards_markdown(tmp_path)
    assert "| 79.20 (Cityscapes val (500 images): reported in DGMN2's README (not measured here)) |" in md
    assert "measured here" in md.split("\n\n")[-1]
