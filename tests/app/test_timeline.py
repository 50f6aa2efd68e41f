"""The Training tab's slider (handler), the timeline endpoint (gradio_client) and the headless timeline page."""
import cv2
import numpy as np
import plotly.graph_objects as go
import pytest

from dgmn.app import build_app
from dgmn.data import ContextScenes
from dgmn.inspect.__main__ import main as inspect_main
from dgmn.inspect.explorer import Explorer

from .conftest import plots, select, served

NAMES = ["dgmn-full", "fcn-nonlocal", "fcn"]
SCENE = ContextScenes(seed=5, size=(96, 160)).scene(0)


@pytest.fixture(scope="module")
def image_file(tmp_path_factory):
    p = tmp_path_factory.mktemp("img") / "scene.png"
    cv2.imwrite(str(p), cv2.cvtColor(SCENE.image, cv2.COLOR_RGB2BGR))
    return str(p)


def test_slider_shows_the_snapshot_beside_the_final_model(make_page, timeline_checkpoints):
    page = make_page(checkpoints=timeline_checkpoints)
    analysis = page.handlers["analyse"](SCENE.image, NAMES)[page.analysis]
    last = page.handlers["click"](analysis, NAMES, 0.5, True, None, None, select([70, 40]))[page.last_click]
    out = page.handlers["timeline"](analysis, NAMES, last, 0)
    graph0, final0, seg0 = plots(out, "tl-graph")[0], plots(out, "tl-final")[0], plots(out, "tl-seg")[0]
    assert all(isinstance(f, go.Figure) for f in (graph0, final0, seg0)) and plots(out, "tl-graph")[1] is None
    assert not any(t.name and t.name.startswith("walks") for t in graph0.data)  # step 0: the dilated grid, no walks
    assert any(t.name and t.name.startswith("walks") for t in final0.data)
    later = page.handlers["timeline"](analysis, NAMES, last, 1)
    assert any(t.name and t.name.startswith("walks") for t in plots(later, "tl-graph")[0].data)
    stats = next(v for k, v in later.items() if getattr(k, "elem_id", None) == "tl-stats")
    assert isinstance(stats, go.Figure)
    assert "snapshot-" not in str(page.explorer.available()) and all("@" not in n for n in page.explorer.available())
    none = page.handlers["timeline"](analysis, ["fcn"], last, 0)
    assert "has a training timeline" in next(v for k, v in none.items() if getattr(k, "elem_id", None) == "tl-info")


def test_timeline_endpoint(timeline_checkpoints, image_file):
    from gradio_client import Client, handle_file

    with served(build_app(Explorer(timeline_checkpoints))) as url:
        c = Client(url, verbose=False)
        res = c.predict(handle_file(image_file), 70, 40, "dgmn-full", api_name="/timeline")
        assert [r["step"] for r in res] == [0, 10] and all(abs(sum(r["probabilities"].values()) - 1) < 1e-6 for r in res)
        nodes0 = res[0]["layers"]["context"]["nodes"]
        assert all(n["walk"] == [0.0, 0.0] for n in nodes0) and any(n["walk"] != [0.0, 0.0] for n in res[1]["layers"]["context"]["nodes"])
        with pytest.raises(Exception, match="has no training timeline"):
            c.predict(handle_file(image_file), 70, 40, "fcn", api_name="/timeline")
        assert len(c.predict(handle_file(image_file), 1, 1, "dgmn-full", api_name="/timeline")) == 2  # still serving


def test_headless_timeline_page(timeline_checkpoints, image_file, tmp_path, capsys):
    out = tmp_path / "t.html"
    assert inspect_main(["--checkpoints", str(timeline_checkpoints), "--checkpoint", "dgmn-full", "--timeline", "--image", image_file,
                         "--pixel", "40,70", "--html", str(out)]) == 0
    page = out.read_text()
    assert "training step" in page and "sliders" in page
    assert inspect_main(["--checkpoints", str(timeline_checkpoints), "--checkpoint", "fcn", "--timeline", "--image", image_file,
                         "--pixel", "40,70", "--html", str(out)]) == 2
    assert "has no training timeline" in capsys.readouterr().err
