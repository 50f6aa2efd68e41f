"""Training timelines in the explorer: each snapshot is a model of its own (``NAME@STEP``, not listed), analysed
on first use and kept with the analysis, so moving the app's slider back and forth re-runs nothing."""
from __future__ import annotations

import threading

from ..models import CheckpointError, has_timeline, load_timeline
from .explorer import Analysis, Explorer, InputError
from .records import ModelAnswer


def snapshot_name(name: str, step: int) -> str:
    return f"{name}@{int(step)}"


class TimelineView:
    """Timelines of the explorer's checkpoints, loaded once per model."""

    def __init__(self, explorer: Explorer):
        self.explorer = explorer
        self._steps: dict[str, list[int]] = {}
        self._stats: dict[str, list[dict]] = {}
        self._problems: dict[str, list[str]] = {}
        self._lock = threading.Lock()

    def available(self, names) -> list[str]:
        """Which of ``names`` have a timeline."""
        return [n for n in names or [] if isinstance(n, str) and n in self.explorer.available()
                and has_timeline(n, self.explorer.checkpoint_dir)]

    def steps(self, name: str) -> list[int]:
        """The snapshot steps of ``name``'s timeline (loading it on first use)."""
        with self._lock:
            if name not in self._steps:
                if not isinstance(name, str) or name not in self.explorer.available():
                    self.explorer.card(name)  # the explorer's own message for a name that is no model
                if name not in self.available([name]):
                    raise InputError(f"model {name!r} has no training timeline; models with one: "
                                     f"{', '.join(self.available(self.explorer.available())) or 'none'}")
                try:
                    snaps = load_timeline(name, self.explorer.device, directory=self.explorer.checkpoint_dir)
                except CheckpointError as exc:
                    raise InputError(f"the timeline of {name!r} cannot be loaded: {exc}") from None
                card = self.explorer.card(name)
                for s in snaps:
                    self.explorer.add_model(snapshot_name(name, s.step), s.model, card, listed=False)
                self._steps[name] = [s.step for s in snaps]
                self._stats[name] = [s.stats for s in snaps]
                self._problems[name] = snaps.problems
            return self._steps[name]

    def stats(self, name: str) -> list[dict]:
        self.steps(name)
        return self._stats[name]

    def problems(self, name: str) -> list[str]:
        self.steps(name)
        return self._problems[name]

    def at(self, name: str, step: int) -> int:
        """The latest snapshot step ≤ ``step`` (the first one if none is)."""
        steps = self.steps(name)
        return max([s for s in steps if s <= step] or steps[:1])

    def analyse(self, analysis: Analysis, name: str, step: int) -> str:
        """Analyse the image with the snapshot (once; kept in ``analysis``); returns the snapshot's model name."""
        snap = snapshot_name(name, self.at(name, step))
        self.explorer.analyse(analysis.image, [snap], analysis.truth, analysis)
        return snap

    def answer(self, analysis: Analysis, name: str, step: int, y: float, x: float) -> ModelAnswer:
        """The snapshot's answer at pixel (y, x): class, probabilities and every context layer's graph."""
        snap = self.analyse(analysis, name, step)
        return self.explorer.inspect(analysis, y, x, [snap]).models[snap]

    def all_answers(self, analysis: Analysis, name: str, y: float, x: float) -> list[dict]:
        """The ``timeline`` endpoint: per snapshot {"step", "class", "probabilities", "layers"} (JSON)."""
        out = []
        for step in self.steps(name):
            a = self.answer(analysis, name, step, y, x).to_json()
            out.append({"step": step, "class": a["class"], "probabilities": a["probabilities"], "layers": a["layers"]})
        return out
