"""docs/tutorial.ipynb runs end to end (nbclient, a fresh python3 kernel in the repository root) and says what
it should. It trains for one minute: about 75 s in all on 2 cores (measured on a loaded machine)."""
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat", reason="nbclient and ipykernel are in requirements-dev.txt")
nbclient = pytest.importorskip("nbclient", reason="nbclient and ipykernel are in requirements-dev.txt")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "docs" / "tutorial.ipynb"


def test_tutorial_notebook_runs_end_to_end():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert not any(c.get("outputs") for c in nb.cells if c.cell_type == "code"), "commit the notebook without outputs"
    nbclient.NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    for expected in ("rate 4: [(0, 0), (0, 4), (0, 8)", "we inspect pixel", "steps in", "mIoU",
                     "fcn-nonlocal: predicts", "dgmn-full message share by class"):
        assert expected in text, expected
    figures = [o for o in outputs if "application/vnd.plotly.v1+json" in o.get("data", {})]
    assert len(figures) == 6  # ground truth, untrained nodes, trained nodes, diagnostics, attention, dgmn-full nodes
