"""gradio_client against a launched app: the public endpoints inspect_xy and segment."""
import base64

import cv2
import numpy as np
import pytest

from dgmn.app import build_app
from dgmn.data import ContextScenes
from dgmn.inspect.explorer import Explorer

from .conftest import served


@pytest.fixture(scope="module")
def client(tiny_checkpoints, tmp_path_factory):
    from gradio_client import Client

    with served(build_app(Explorer(tiny_checkpoints))) as url:
        yield Client(url, verbose=False)


@pytest.fixture(scope="module")
def image_file(tmp_path_factory):
    sc = ContextScenes(seed=5, size=(96, 160)).scene(1)
    p = tmp_path_factory.mktemp("img") / "scene.png"
    cv2.imwrite(str(p), cv2.cvtColor(sc.image, cv2.COLOR_RGB2BGR))
    return p


def test_inspect_xy(client, image_file):
    from gradio_client import handle_file

    res = client.predict(handle_file(str(image_file)), 100, 30, ["dgmn-full", "fcn-nonlocal"], api_name="/inspect_xy")
    assert set(res) == {"dgmn-full", "fcn-nonlocal"}
    q = res["dgmn-full"]["layers"]["context"]
    assert q["feature_pixel"] == [round((30 + 0.5) / 8 - 0.5), round((100 + 0.5) / 8 - 0.5)] and len(q["nodes"]) == 18
    assert np.isclose(np.asarray(res["fcn-nonlocal"]["layers"]["context"]["attention"]).sum(), 1, atol=1e-4)


def test_segment(client, image_file):
    from gradio_client import handle_file

    res = client.predict(handle_file(str(image_file)), ["fcn", "dgmn-full"], api_name="/segment")
    for name in ("fcn", "dgmn-full"):
        png = np.frombuffer(base64.b64decode(res[name]["png_base64"]), np.uint8)
        label = cv2.imdecode(png, cv2.IMREAD_UNCHANGED)
        assert label.shape == (96, 160) == tuple(res[name]["shape"]) and label.max() < 8
        assert sum(res[name]["pixels"].values()) == 96 * 160


def test_bad_requests_get_messages_and_the_server_keeps_serving(client, image_file, tmp_path):
    from gradio_client import handle_file

    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    with pytest.raises(Exception, match="not an image this app can read"):
        client.predict(handle_file(str(bad)), 1, 1, ["fcn"], api_name="/inspect_xy")
    with pytest.raises(Exception, match="no model named 'nope'"):
        client.predict(handle_file(str(image_file)), 1, 1, ["nope"], api_name="/inspect_xy")
    with pytest.raises(Exception, match="outside the 160×96 image"):
        client.predict(handle_file(str(image_file)), 500, 1, ["fcn"], api_name="/inspect_xy")
    assert "fcn" in client.predict(handle_file(str(image_file)), 1, 1, ["fcn"], api_name="/inspect_xy")


def test_what_if_endpoint(client, image_file):
    from gradio_client import handle_file

    res = client.predict(handle_file(str(image_file)), 100, 30, "dgmn-full", [{"op": "drop_rate", "rate": 1}], "pixel", api_name="/what_if")
    assert res["model"] == "dgmn-full" and res["scope"] == "pixel" and res["pixel"] == {"x": 100, "y": 30}
    assert abs(sum(res["after"]["probabilities"].values()) - 1) < 1e-6 and "label_map" not in res
    img = client.predict(handle_file(str(image_file)), 100, 30, "dgmn-full", [{"op": "no_walks"}, {"op": "no_context"}], "image", api_name="/what_if")
    label = cv2.imdecode(np.frombuffer(base64.b64decode(img["label_map"]["png_base64"]), np.uint8), cv2.IMREAD_UNCHANGED)
    assert label.shape == (96, 160) and img["changed_pixels"] == int(img["changed_pixels"])
    with pytest.raises(Exception, match="unknown op"):
        client.predict(handle_file(str(image_file)), 100, 30, "dgmn-full", [{"op": "explode"}], "pixel", api_name="/what_if")
    with pytest.raises(Exception, match="needs a DGMN layer"):
        client.predict(handle_file(str(image_file)), 100, 30, "fcn-nonlocal", [{"op": "drop_rate", "rate": 0}], "image", api_name="/what_if")
    assert client.predict(handle_file(str(image_file)), 1, 1, "fcn", [{"op": "occlude", "box": [0, 0, 50, 50], "fill": "mean"}], "pixel",
                          api_name="/what_if")["graph"] == {}
