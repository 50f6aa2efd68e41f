"""Rates named for people: "rate #1" … "rate #5+", in the order of a layer's dilations, and back to indices."""
from __future__ import annotations

from .records import DGMNQuery

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


def shown_rates(labels, answer) -> list[int] | None:
    """The rates of ``answer``'s (a :class:`dgmn.inspect.records.ModelAnswer`) first layer that ``labels``
    selects; None (all) when that layer is not a DGMN layer or nothing is chosen."""
    first = answer.first_layer() if answer is not None else None
    if first is None or not isinstance(first[1], DGMNQuery):
        return None
    return rates_from_labels(labels, len(first[1].dilations))
