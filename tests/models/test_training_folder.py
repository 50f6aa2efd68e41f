"""A ``python -m dgmn.train --out`` folder opened as a checkpoints folder: only finished models are listed."""
import json

import torch

from dgmn.inspect.model_cards import model_cards_markdown
from dgmn.models import build_segmenter, list_checkpoints, save_model
from dgmn.models.checkpoint import training_folder_note

from ..context_models import tiny_card


def training_folder(root, finished: bool):
    """What dgmn.train writes: DIR/last.* and DIR/state.json while it runs, DIR/<name>.* when it ends."""
    torch.manual_seed(0)
    model = build_segmenter("small", "none", 8, channels=16, backbone_cfg={"width": 16}).eval()
    save_model(model, root / "last", tiny_card("run-a", "none", {}))
    (root / "last.optim.safetensors").write_bytes(b"")
    (root / "state.json").write_text(json.dumps({"step": 500, "seconds": 12.0}))
    if finished:
        save_model(model, root / "run-a", tiny_card("run-a", "none", {}))
    return root


def test_a_finished_run_lists_its_final_model_only(tmp_path):
    d = training_folder(tmp_path, finished=True)
    assert list_checkpoints(d) == ["run-a"]
    note = training_folder_note(d)
    assert "its final model is listed as run-a" in note and "step 500" in note
    assert f"dgmn.load_model('{d / 'last'}')" in note
    assert "run-a" in model_cards_markdown(d) and "training folder" in model_cards_markdown(d)


def test_a_running_run_lists_nothing_and_says_why(tmp_path):
    d = training_folder(tmp_path, finished=False)
    assert list_checkpoints(d) == []
    assert "has not finished" in training_folder_note(d) and "has not finished" in model_cards_markdown(d)


def test_a_checkpoint_named_last_elsewhere_is_still_a_model(tmp_path):
    torch.manual_seed(0)
    model = build_segmenter("small", "none", 8, channels=16, backbone_cfg={"width": 16}).eval()
    save_model(model, tmp_path / "last", tiny_card("last", "none", {}))
    assert list_checkpoints(tmp_path) == ["last"] and training_folder_note(tmp_path) is None
