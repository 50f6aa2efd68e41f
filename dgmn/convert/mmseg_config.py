"""Test-time settings read from the config text an mmseg checkpoint carries (``meta["config"]``), if any.

What the weights cannot say: the SETR heads' ``img_size`` (the square the logits are resized to), the decode
head's ``align_corners``, and ``test_cfg``'s crop and stride. mmseg saves the merged config as Python source text;
each setting is taken from it only where the text states it exactly once (one distinct value), else the
published DGMN2 configs' value is used (769, True, 769, 513). The text is matched with regular expressions,
never executed.
"""
from __future__ import annotations

import re
from typing import Any

DEFAULTS = {"img_size": 769, "align_corners": True, "crop_size": (769, 769), "stride": (513, 513)}
_PATTERNS = {
    "img_size": re.compile(r"\bimg_size\s*=\s*(\d+)"),
    "align_corners": re.compile(r"\balign_corners\s*=\s*(True|False)"),
    "test_cfg": re.compile(r"\btest_cfg\s*=\s*dict\(\s*mode\s*=\s*['\"]slide['\"]\s*,\s*crop_size\s*=\s*\((\d+)\s*,\s*(\d+)\)"
                           r"\s*,\s*stride\s*=\s*\((\d+)\s*,\s*(\d+)\)"),
}


def settings_from_meta(rest: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """(settings, names of those read from the checkpoint's config text)."""
    out, found = dict(DEFAULTS), []
    meta = rest.get("meta")
    text = meta.get("config") if isinstance(meta, dict) else None
    if not isinstance(text, str) or len(text) > 1_000_000:
        return out, found
    sizes = set(_PATTERNS["img_size"].findall(text))
    if len(sizes) == 1 and 1 <= int(next(iter(sizes))) <= 8192:
        out["img_size"] = int(sizes.pop())
        found.append("img_size")
    corners = set(_PATTERNS["align_corners"].findall(text))
    if len(corners) == 1:
        out["align_corners"] = corners.pop() == "True"
        found.append("align_corners")
    cfgs = set(_PATTERNS["test_cfg"].findall(text))
    if len(cfgs) == 1:
        h, w, sh, sw = (int(v) for v in cfgs.pop())
        if all(1 <= v <= 8192 for v in (h, w, sh, sw)):
            out["crop_size"], out["stride"] = (h, w), (sh, sw)
            found += ["crop_size", "stride"]
    return out, found
