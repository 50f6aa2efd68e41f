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


def test_a_converted_dgmn2_model(tiny_checkpoints, scene_file, tmp_path, capsys):
    """Issue 18: a converted DGMN2 checkpoint next to ours; its card's sliding-window inference (crops made small here,
    so the 96×160 scene needs 2 × 3 of them) runs with a progress bar on stderr; the JSON holds every block."""
    import shutil

    from dgmn.convert import convert_dgmn2

    from ..models.dgmn2.fixtures import fixture

    d = tmp_path / "ck"
    shutil.copytree(tiny_checkpoints, d)
    convert_dgmn2(fixture("fpn.pth"), d, name="dgmn2-fpn")
    card = json.loads((d / "dgmn2-fpn.json").read_text())
    card["inference"].update(crop_size=[64, 64], stride=[48, 48])
    (d / "dgmn2-fpn.json").write_text(json.dumps(card))
    out, page = tmp_path / "o.json", tmp_path / "o.html"
    assert main(["--checkpoints", str(d), "--checkpoint", "dgmn2-fpn", "--checkpoint", "dgmn-full", "--image", scene_file,
                 "--pixel", "40,70", "--json", str(out), "--html", str(page)]) == 0
    assert "dgmn2-fpn: sliding-window crops" in capsys.readouterr().err
    doc = json.loads(out.read_text())
    layers = doc["dgmn2-fpn"]["layers"]
    assert len(layers) == 6 and layers["stage 1, block 1"]["type"] == "dgmn2" and len(doc["dgmn2-fpn"]["probabilities"]) == 19
    assert layers["stage 1, block 1"]["crop"] == [0, 48, 64, 112]  # of the 2 × 3 crops, the one whose centre is nearest (40, 70)
    assert "DGMN2 attention" in page.read_text()[:10_000_000]


def test_it_says_what_it_found_and_wrote(tiny_checkpoints, scene_file, tmp_path, capsys):
    out, page = tmp_path / "o.json", tmp_path / "o.html"
    base = ["--checkpoints", str(tiny_checkpoints), "--checkpoint", "dgmn-full", "--checkpoint", "fcn", "--image", scene_file,
            "--pixel", "40,70"]
    assert main(base + ["--json", str(out), "--html", str(page)]) == 0
    said = capsys.readouterr()
    doc = json.loads(out.read_text())
    lines = said.out.splitlines()
    assert lines[:2] == [f"{n}: {doc[n]['class']} ({doc[n]['probabilities'][doc[n]['class']]:.2f}) at pixel y=40, x=70"
                         for n in ("dgmn-full", "fcn")]
    assert lines[2].startswith(f"wrote {out} ") and lines[3].startswith(f"wrote {page} ") and len(lines) == 4
    assert main(base + ["--json", "-"]) == 0  # stdout is the JSON alone; the summary goes to stderr
    said = capsys.readouterr()
    assert json.loads(said.out) == doc and said.err.startswith("dgmn-full: ")


def test_a_pixel_outside_the_image_names_the_order_and_the_range(tiny_checkpoints, scene_file, capsys):
    assert main(["--checkpoints", str(tiny_checkpoints), "--checkpoint", "fcn", "--image", scene_file, "--pixel", "120,40"]) == 2
    err = capsys.readouterr().err
    assert err == (f"dgmn.inspect: --pixel 120,40 (Y,X) is outside the 160×96 image {scene_file}: Y must be in 0…95 "
                   "and X in 0…159\n")


def test_a_reader_that_stops_early_gets_no_traceback(tiny_checkpoints, scene_file):
    """``dgmn-inspect ... --json - | head -c 0``: the pipe is closed before the JSON is written."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen([sys.executable, "-m", "dgmn.inspect", "--checkpoints", str(tiny_checkpoints), "--checkpoint",
                             "dgmn-full", "--image", scene_file, "--pixel", "40,70", "--json", "-"],
                            cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proc.stdout.close()  # the reader is gone before the command writes
    err = proc.stderr.read()
    assert proc.wait(300) == 1
    assert "Traceback" not in err and "BrokenPipe" not in err and "Exception ignored" not in err


@pytest.mark.parametrize("option, path, says", [
    ("--json", "{tmp}", "--json {tmp} is a folder; give a file path in it, e.g. --json {tmp}/out.json"),
    ("--html", "{tmp}/no/such/o.html", "the folder {tmp}/no/such does not exist"),
    ("--html", "-", "--html writes a file"),
])
def test_an_output_that_cannot_be_written_is_refused_before_the_analysis(tiny_checkpoints, scene_file, tmp_path, capsys,
                                                                         option, path, says):
    path, says = path.format(tmp=tmp_path), says.format(tmp=tmp_path)
    assert main(["--checkpoints", str(tiny_checkpoints), "--checkpoint", "fcn", "--image", scene_file, "--pixel", "40,70",
                 option, path]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dgmn.inspect: ") and says in err and len(err.splitlines()) == 1
    assert not (tmp_path / "-").exists()


def test_a_folder_given_as_the_image_is_named_as_one(tiny_checkpoints, tmp_path, capsys):
    assert main(["--checkpoints", str(tiny_checkpoints), "--checkpoint", "fcn", "--image", str(tmp_path), "--pixel", "1,1"]) == 2
    assert capsys.readouterr().err == f"dgmn.inspect: {tmp_path} is a folder, not an image file; give the path of one image\n"
