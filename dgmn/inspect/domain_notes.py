"""What a model's labels mean on an image it was not trained for: one sentence per model, from its card."""
from __future__ import annotations

from .markdown_text import markdown_text

DATASET_NAMES = {"context-scenes": "ContextScenes, generated scenes of 8 classes (sky, water, grass, road, house, boathouse, car, boat)"}


def out_of_domain_note(name: str, card: dict, has_truth: bool) -> str | None:
    """For an image without ground truth and a model trained on generated ContextScenes: what its labels are
    worth there, and that its graph still shows where it looks (Markdown; the model's name shown as text).
    None otherwise."""
    dataset = (card.get("dataset") or {}).get("name")
    if has_truth or dataset != "context-scenes":
        return None
    return (f"**{markdown_text(name)}** was trained only on {DATASET_NAMES[dataset]}: on a photograph its labels are guesses outside "
            "what it learned, but its graph still shows where it looks. To inspect a model trained on your own data, "
            "see README › *Your own model, no checkpoint needed*.")
