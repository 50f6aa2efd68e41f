"""Which panels apply to a DGMN2 model (issue 18): one plain line per panel that does not, none for our models."""
import pytest

from dgmn.inspect.applicability import PANELS, is_dgmn2, not_applicable, not_applicable_lines
from dgmn.inspect.explorer import Explorer

DGMN2_CARD = {"architecture": {"family": "dgmn2", "head": "fpn"}, "dataset": {"name": "cityscapes"}}
OUR_CARD = {"architecture": {"backbone": "small", "context": "dgmn"}}


@pytest.mark.parametrize("panel", list(PANELS))
def test_one_line_for_dgmn2_none_for_ours(panel):
    line = not_applicable("m", DGMN2_CARD, panel)
    assert line == f"m: {PANELS[panel]}" and "\n" not in line
    assert not_applicable("m", OUR_CARD, panel) is None and not_applicable("m", {}, panel) is None


def test_is_dgmn2_and_unknown_panels():
    assert is_dgmn2(DGMN2_CARD) and not is_dgmn2(OUR_CARD) and not is_dgmn2(None) and not is_dgmn2({"architecture": "x"})
    with pytest.raises(ValueError, match="unknown panel"):
        not_applicable("m", DGMN2_CARD, "nope")


def test_lines_for_an_explorers_models(tiny_checkpoints):
    ex = Explorer(tiny_checkpoints)
    assert not_applicable_lines(ex, ["dgmn-full", None, "nope", "fcn"], "cost") == []
