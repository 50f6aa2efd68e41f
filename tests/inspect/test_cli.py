"""``python -m dgmn.inspect``: the JSON inspection, the HTML page, and --what-if, on tiny checkpoints."""
import json

import cv2
import pytest

from dgmn.data import ContextScenes
from dgmn.inspect.__main__ import main


@pytest.fixture(scope="module")
def scene_file(tmp_path_factory):
    p = tmp_path_factory.mktemp("img") / "scene.png"
    cv2.imwrite(str(p), cv2.cvtColor(ContextScenes(seed=5, size=(96, 160)).scene(0).image, cv2.COLOR_RGB2BGR))
    return str(p)


def test_inspection_json_and_html(tiny_checkpoints, scene_file, tmp_path):
    out, page = tmp_path / "o.json", tmp_path / "o.html"
    assert main(["--checkpoints", str(tiny_checkpoints), "--checkpoint", "dgmn-full", "--checkpoint", "fcn-nonlocal",
                 "--image", scene_file, "--pixel", "40,70", "--json", str(out), "--html", str(page)]) == 0
    doc = json.loads(out.read_text())
    assert set(doc) == {"dgmn-full", "fcn-nonlocal"} and len(doc["dgmn-full"]["layers"]["context"]["nodes"]) == 18
    assert "plotly" in page.read_text()[:5_000_000]


def test_what_if(tiny_checkpoints, scene_file, tmp_path, capsys):
    base = ["--checkpoints", str(tiny_checkpoints), "--checkpoint", "dgmn-full", "--image", scene_file, "--pixel", "40,70"]
    assert main(base + ["--what-if", '[{"op": "drop_rate", "rate": 1}]']) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["scope"] == "pixel" and res["pixel"] == {"x": 70.0, "y": 40.0} and res["edits"] == [{"op": "drop_rate", "rate": 1}]
    out = tmp_path / "w.json"
    assert main(base + ["--what-if", '[{"op": "no_walks"}]', "--scope", "image", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["label_map"]["shape"] == [96, 160]
    assert main(base + ["--what-if", '[{"op": "drop_rate", "rate": 5}]']) == 2
    assert "has 2 rate(s)" in capsys.readouterr().err
