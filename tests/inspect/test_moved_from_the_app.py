"""What the app used to compute itself, now UI-free in dgmn.inspect: uploads, example truths, label maps,
exports, attribution runs with their time limit, rate labels, the endpoints' work and in-memory models."""
import base64
import json

import cv2
import numpy as np
import pytest
import torch

from dgmn.data import ContextScenes
from dgmn.inspect.attribution_run import attribute_models, method_key
from dgmn.inspect.custom_model import custom_card, custom_summary, default_palette
from dgmn.inspect.endpoints import Endpoints
from dgmn.inspect.examples import ExampleSet
from dgmn.inspect.explorer import Explorer, InputError
from dgmn.inspect.export import write_inspection
from dgmn.inspect.label_maps import encode_label_map
from dgmn.inspect.rate_labels import rate_label, rates_from_labels, shown_rates
from dgmn.inspect.uploads import analyse_source, file_path, read_source

NAMES = ["dgmn-full", "fcn-nonlocal", "fcn"]
SCENE = ContextScenes(seed=5, size=(96, 160)).scene(0)


@pytest.fixture(scope="module")
def explorer(tiny_checkpoints):
    return Explorer(tiny_checkpoints)


@pytest.fixture(scope="module")
def scene_file(tmp_path_factory):
    p = tmp_path_factory.mktemp("img") / "scene.png"
    cv2.imwrite(str(p), cv2.cvtColor(SCENE.image, cv2.COLOR_RGB2BGR))
    return str(p)


def test_example_set_captions_and_truth_found_by_content(scene_file):
    ex = ExampleSet([(scene_file, SCENE.label), ("/x/astronaut.png", None)])
    assert ex.captions() == ["scene 1", "astronaut"] and len(ex) == 2 and ex.path(0) == scene_file
    assert np.array_equal(ex.truth_for(SCENE.image), SCENE.label) and ex.truth_for(255 - SCENE.image) is None


def test_uploads_read_files_dicts_and_arrays_and_keep_models_already_run(explorer, scene_file):
    assert file_path({"path": scene_file}) == scene_file and file_path(None) is None
    img, notice, size = read_source(scene_file)
    assert np.array_equal(img, SCENE.image) and notice == "" and size == (96, 160)
    a = analyse_source(explorer, {"path": scene_file}, ["fcn"], examples=ExampleSet([(scene_file, SCENE.label)]))
    assert a.truth is not None and list(a.results) == ["fcn"]
    first = a.results["fcn"]
    b = analyse_source(explorer, None, ["fcn", "dgmn-full"], a)  # the same image, one more model
    assert b is a and b.results["fcn"] is first and "dgmn-full" in b.results
    with pytest.raises(InputError, match="Load or pick an image first"):
        analyse_source(explorer, None, ["fcn"])


def test_label_map_png_is_lossless_and_counts_pixels(explorer):
    pred = np.random.default_rng(0).integers(0, 8, (20, 30)).astype(np.uint8)
    pred[0, 0] = 7
    out = encode_label_map(pred, explorer.card("fcn"))
    back = cv2.imdecode(np.frombuffer(base64.b64decode(out["png_base64"]), np.uint8), cv2.IMREAD_UNCHANGED)
    assert np.array_equal(back, pred) and out["shape"] == [20, 30] and sum(out["pixels"].values()) == 600
    assert out["pixels"]["boat"] == int((pred == 7).sum())


def test_export_writes_the_json_and_the_page(explorer, tmp_path):
    a = explorer.analyse(SCENE.image, NAMES)
    ins = explorer.inspect(a, 40, 70, NAMES)
    paths = write_inspection(ins, "<html>page</html>", tmp_path / "out")
    doc = json.loads(open(paths[0]).read())
    assert doc["pixel"] == {"x": 70, "y": 40} and doc["models"] == json.loads(json.dumps(ins.to_json()))
    assert open(paths[1]).read() == "<html>page</html>"


def test_attribution_run_reports_progress_and_stops_at_its_time_limit(explorer):
    a = explorer.analyse(SCENE.image, NAMES)
    seen = []
    run = attribute_models(explorer, a, NAMES, 40, 70, "Integrated Gradients (slower)", progress=lambda f, what: seen.append((f, what)))
    assert list(run.maps) == NAMES and run.stopped_after is None and seen[-1][0] == pytest.approx(1.0)
    assert all(m.values.shape == (96, 160) and (m.values >= 0).all() for m in run.maps.values())
    assert run.maps["fcn"].class_name == explorer.card("fcn")["classes"][int(a.results["fcn"].prediction[40, 70])]
    stopped = attribute_models(explorer, a, NAMES, 40, 70, "integrated_gradients", time_limit=0.0)
    assert stopped.stopped_after == 0.0 and stopped.maps == {}
    assert method_key("Saliency") == "saliency"
    with pytest.raises(ValueError, match="unknown attribution method"):
        method_key("gradcam")


def test_rate_labels(explorer):
    assert rate_label(0) == "rate #1" and rate_label(9) == "rate #5+"
    assert rates_from_labels(["rate #2", "rate #5+"], 7) == [1, 4, 5, 6] and rates_from_labels(None, 3) is None
    a = explorer.analyse(SCENE.image, NAMES)
    ins = explorer.inspect(a, 10, 10, NAMES)
    assert shown_rates(["rate #2"], ins["dgmn-full"]) == [1] and shown_rates(["rate #2"], ins["fcn-nonlocal"]) is None
    assert shown_rates(["rate #2"], ins["fcn"]) is None


def test_endpoints_take_pixels_of_the_image_as_given(explorer, scene_file, tmp_path):
    ep = Endpoints(explorer, cache_items=2)
    big = tmp_path / "big.png"
    cv2.imwrite(str(big), cv2.resize(cv2.imread(scene_file), (1600, 960), interpolation=cv2.INTER_NEAREST))  # downscaled ×0.64
    small = ep.inspect(scene_file, 40.0, 70.0, ["fcn"])
    large = ep.inspect(str(big), 40 * 10 + 4.5, 70 * 10 + 4.5, ["fcn"])
    assert small["fcn"]["class"] == large["fcn"]["class"] and len(ep.cache) == 2
    seg = ep.segment(scene_file, ["fcn"])
    assert seg["fcn"]["shape"] == [96, 160]
    with pytest.raises(InputError, match="x and y are required"):
        ep.inspect(scene_file, None, 3, ["fcn"])
    with pytest.raises(InputError, match="outside the 160×96 image"):
        ep.inspect(scene_file, 3, 500, ["fcn"])


class TwoLayerNet(torch.nn.Module):
    """Not a Segmenter: a user's own architecture with a DGMN layer inside a Sequential."""

    def __init__(self, classes=3):
        super().__init__()
        import dgmn

        self.body = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), dgmn.DGMN(8, dilations=(1, 2)))
        self.head = torch.nn.Conv2d(8, classes, 1)

    def forward(self, x):
        return self.head(self.body(x))


def test_in_memory_models_join_the_explorer(tiny_checkpoints):
    ex = Explorer(tiny_checkpoints)
    ex.add_model("mine", TwoLayerNet(), custom_card(["a", "b", "c"], name="mine"))
    assert ex.available()[0] == "mine" and ex.registered == ["mine"] and "fcn" in ex.available()
    a = ex.analyse(SCENE.image, ["mine", "fcn"])
    ins = ex.inspect(a, 40, 70, ["mine"])
    assert list(ins["mine"].layers) == ["body.2"] and len(ins["mine"].layers["body.2"].nodes) == 18
    assert custom_summary("mine", ex.model("mine"))["context"] == "your model: 1 DGMN layer"
    ex.add_model("wrong", TwoLayerNet(5), custom_card(["a", "b", "c"]))
    with pytest.raises(InputError, match="returned logits of shape"):
        ex.analyse(SCENE.image, ["wrong"])


def test_custom_cards_refuse_what_cannot_work():
    card = custom_card(["a", "b"], normalization=([0.5] * 3, [0.25] * 3))
    assert card["normalization"] == {"mean": [0.5] * 3, "std": [0.25] * 3} and len(card["palette"]) == 2
    assert len(default_palette(20)) == 20 and all(0 <= v <= 255 for c in default_palette(20) for v in c)
    for bad, msg in [(dict(classes=[]), "non-empty list"), (dict(classes=["a"], palette=[[300, 0, 0]]), "palette"),
                     (dict(classes=["a"], normalization={"mean": [0, 0, 0], "std": [0, 1, 1]}), "positive stds")]:
        with pytest.raises(ValueError, match=msg):
            custom_card(**bad)
