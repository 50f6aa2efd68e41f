"""A training timeline: snapshots of the model at log-spaced steps, with what its graph looked like then.

``train.timeline_steps`` in the YAML: ``log`` (default: 0, 10, 25, 50, 100, 250, 500, 1000, 2000, … and the
last step), a list of steps, or ``off``. Step s is the model after s updates (step 0: before any). Beside the
run's output ``DIR/<name>.safetensors`` it writes ``DIR/<name>.timeline/``:

    step-000000.safetensors + step-000000.json     the snapshot and its card (the run's card, "timeline": {step, of})
    index.json                                     {"model": name, "snapshots": [per step, in order:
        {"step", "file", "train_loss" (mean of the last ≤ 20 batch losses before the step; step 0: the first
         batch's loss at the initial weights), "val_miou" (percent, on ``train.timeline_images`` fixed validation
         images: ContextScenes seed 2000, never the held-out split),
         "layers": {DGMN layer: [per rate {"rate", "dilation", "walk_length", "outside_fraction",
                                            "affinity_entropy", "collapsed_fraction"}]}}]}

The statistics are :func:`dgmn.modules.graph_stats.rate_statistics` of the last iteration, averaged over the
validation images. Writing a snapshot does not change training: the model is evaluated in eval mode without
gradients and the training random streams are not touched.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from ..evaluate.metrics import evaluate_model
from ..models import save_model
from ..modules import DGMN
from ..modules.graph_stats import rate_statistics

LOG_STEPS = (0, 10, 25, 50, 100, 250, 500, 1000, 2000, 5000, 10000, 20000, 50000)
VALIDATION_IMAGES = 32


def timeline_steps(setting, total: int) -> list[int]:
    """The steps to snapshot for a run of ``total`` steps: ``"log"``/``True`` → LOG_STEPS below total, and total;
    a list → those (≤ total); ``"off"``/``False``/``None`` → none."""
    if setting in (None, False, "off", "none"):
        return []
    if setting in (True, "log"):
        return sorted({s for s in LOG_STEPS if s < total} | {total})
    try:
        steps = sorted({int(s) for s in setting})
    except (TypeError, ValueError):
        raise ValueError(f"train.timeline_steps must be 'log', 'off' or a list of steps, got {setting!r}") from None
    if any(s < 0 or s > total for s in steps):
        raise ValueError(f"train.timeline_steps must lie in 0…{total} (train.steps), got {steps}")
    return steps


class TimelineWriter:
    """Writes the snapshots and the index of one run (see the module docstring)."""

    def __init__(self, folder: Path, name: str, steps: list[int], validation, batch_size: int = 16):
        self.folder, self.name, self.steps = Path(folder), name, set(steps)
        self.validation, self.batch_size = validation, batch_size
        self.entries: list[dict] = []
        self.losses: list[float] = []
        self.folder.mkdir(parents=True, exist_ok=True)

    def wants(self, step: int) -> bool:
        return step in self.steps

    def add_loss(self, loss: float) -> None:
        """The loss of the batch just trained on; the first one is also step 0's loss (at the initial weights)."""
        self.losses = (self.losses + [float(loss)])[-20:]
        if self.entries and self.entries[-1]["train_loss"] is None:
            self.entries[-1]["train_loss"] = float(loss)
            self._write_index()

    def _write_index(self) -> None:
        (self.folder / "index.json").write_text(json.dumps({"model": self.name, "snapshots": self.entries}, indent=1) + "\n")

    @torch.no_grad()
    def snapshot(self, model: torch.nn.Module, step: int, card: dict, device) -> dict:
        """Save the model at ``step`` with its card and append its statistics to the index."""
        was_training = model.training
        model.eval()
        try:
            val_miou, layers = self._statistics(model, device)
        finally:
            model.train(was_training)
        stem = f"step-{step:06d}"
        save_model(model, self.folder / stem, dict(card, timeline={"step": step, "of": self.name}))
        entry = {"step": step, "file": stem + ".safetensors", "train_loss": sum(self.losses) / len(self.losses) if self.losses else None,
                 "val_miou": val_miou, "layers": layers}
        self.entries.append(entry)
        self._write_index()
        return entry

    def _statistics(self, model, device) -> tuple[float, dict]:
        dgmn_layers = {n: m for n, m in model.named_modules() if isinstance(m, DGMN)}
        seen: dict[str, list[dict]] = {n: [] for n in dgmn_layers}
        handles = []
        for name, layer in dgmn_layers.items():
            def hook(layer, f, history, name=name):
                seen[name].append([rate_statistics(g.offset, g.affinity, g.dilation, layer.kernel_size) for g in history[-1]])
            handles.append(layer.register_graph_hook(hook))
        try:
            miou = evaluate_model(model, self.validation, batch_size=self.batch_size, device=device)["miou"]
        finally:
            for h in handles:
                h.remove()
        layers = {}
        for name, batches in seen.items():
            rates = []
            for s, d in enumerate(dgmn_layers[name].dilations):
                stats = {k: sum(b[s][k] for b in batches) / len(batches) for k in batches[0][s]} if batches else {}
                rates.append({"rate": s, "dilation": d, **stats})
            layers[name] = rates
        return miou, layers
