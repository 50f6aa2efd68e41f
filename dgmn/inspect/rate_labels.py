"""Rates named for people: "rate #1" … "rate #5+", in the order of a layer's dilations, and back to indices."""
from __future__ import annotations

RATE_LABELS = ("rate #1", "rate #2", "rate #3", "rate #4", "rate #5+")


def rate_label(index: int) -> str:
    """0-based rate index → its label (every rate from the fifth on shares "rate #5+")."""
    return RATE_LABELS[min(index, len(RATE_LABELS) - 1)]


def rates_from_labels(labels, num_rates: int) -> list[int] | None:
    """The 0-based indices of a layer's ``num_rates`` rates that ``labels`` selects; ``None`` selects all."""
    if labels is None:
        return None
    chosen = set(labels)
    return [i for i in range(num_rates) if rate_label(i) in chosen]
