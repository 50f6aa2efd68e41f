"""The inspection export: the clicked pixel's answer as JSON and a standalone HTML page, written to a new folder."""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

from .records import Inspection


def write_inspection(inspection: Inspection, html: str, directory: str | Path | None = None, extra: dict | None = None) -> list[str]:
    """Write ``inspection.json`` (``{"pixel": {"x", "y"}, "models": <inspect_xy answer>, **extra}``) and
    ``inspection.html`` (``html``, e.g. :func:`dgmn.viz.report.report_html`) into ``directory`` (default: a
    new temporary folder). Returns the two paths, JSON first."""
    d = Path(directory) if directory is not None else Path(tempfile.mkdtemp(prefix="dgmn-export-"))
    d.mkdir(parents=True, exist_ok=True)
    doc = {"pixel": {"x": inspection.x, "y": inspection.y}, "models": inspection.to_json(), **(extra or {})}
    (d / "inspection.json").write_text(json.dumps(doc, indent=1))
    (d / "inspection.html").write_text(html)
    return [str(d / "inspection.json"), str(d / "inspection.html")]
