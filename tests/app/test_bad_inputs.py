"""Every bad input of issue 5 gets a specific message through the user's own path, and the next valid request works.

Fixtures are generated here (nothing large is committed)."""
import io

import cv2
import numpy as np
import pytest
from PIL import Image

from dgmn.app.blocks import ATTRIBUTION_TIME_LIMIT_S, build_app
from dgmn.app.sections import SLOTS
from dgmn.data import ContextScenes
from dgmn.inspect.explorer import Explorer

from .conftest import plots, select

NAMES = ["dgmn-full", "fcn-nonlocal", "fcn"]
SCENE = ContextScenes(seed=5, size=(96, 160)).scene(0).image


@pytest.fixture()
def page(make_page):
    return make_page()


def analyse(page, source, names, current=None):
    """(the analysis now held, the status shown, the handler's whole answer)"""
    out = page.handlers["analyse"](source, names, current)
    return out.get(page.analysis, current), out[page.status], out


def click(page, analysis, x, y, names=NAMES):
    return page.handlers["click"](analysis, names, 0.5, True, None, None, select([x, y]))


def png(arr):
    ok, buf = cv2.imencode(".png", arr)
    return buf.tobytes()


def write(tmp_path, name, data):
    p = tmp_path / name
    p.write_bytes(data)
    return str(p)


def pil_bytes(im, fmt, **kw):
    b = io.BytesIO()
    im.save(b, fmt, **kw)
    return b.getvalue()


BAD = {
    "text.png": (lambda: b"this is not an image", "is not an image this app can read"),
    "truncated.png": (lambda: png(cv2.cvtColor(SCENE, cv2.COLOR_RGB2BGR))[:3000], "could not be decoded"),
    "empty.jpg": (lambda: b"", "is empty (0 bytes)"),
    "line.png": (lambda: png(np.zeros((1, 50, 3), np.uint8)), "the image is only 50×1 pixels"),
}
GOOD = {  # unusual but valid: (bytes factory, expected shape of the analysed image, expected notice or "")
    "gray.png": (lambda: png(cv2.cvtColor(SCENE, cv2.COLOR_RGB2GRAY)), (96, 160, 3), "grayscale"),
    "deep.png": (lambda: png((SCENE.astype(np.uint16) * 257)), (96, 160, 3), ""),
    "rgba.png": (lambda: pil_bytes(Image.fromarray(SCENE).convert("RGBA"), "PNG"), (96, 160, 3), ""),
    "palette.png": (lambda: pil_bytes(Image.fromarray(SCENE).convert("P"), "PNG"), (96, 160, 3), ""),
    "cmyk.jpg": (lambda: pil_bytes(Image.fromarray(SCENE).convert("CMYK"), "JPEG"), (96, 160, 3), ""),
    "anim.gif": (lambda: pil_bytes(Image.fromarray(SCENE), "GIF", save_all=True,
                                   append_images=[Image.fromarray(255 - SCENE)], duration=100), (96, 160, 3), ""),
}


@pytest.mark.parametrize("name", list(BAD))
def test_bad_upload_gets_a_message_and_keeps_what_the_user_had(page, tmp_path, name):
    factory, message = BAD[name]
    current, _, _ = analyse(page, SCENE, NAMES)
    kept, status, out = analyse(page, write(tmp_path, name, factory()), NAMES, current)
    assert message in status and status.startswith("⚠")
    assert set(out) == {page.status}  # the image, the analysis and every panel stay as they were
    # the user's image still answers clicks, and a following valid upload works
    assert click(page, kept, 5, 5)[page.status].startswith("Pixel")
    assert "Click a pixel" in analyse(page, write(tmp_path, "ok.png", png(cv2.cvtColor(SCENE, cv2.COLOR_RGB2BGR))), NAMES, kept)[1]


@pytest.mark.parametrize("name", list(GOOD))
def test_unusual_images_are_read(page, tmp_path, name):
    factory, shape, notice = GOOD[name]
    analysis, status, out = analyse(page, write(tmp_path, name, factory()), NAMES)
    assert out[page.image].shape == shape and "Click a pixel" in status and notice in status


def test_animated_gif_uses_the_first_frame(page, tmp_path):
    shown = analyse(page, write(tmp_path, "anim.gif", GOOD["anim.gif"][0]()), NAMES)[2][page.image]
    assert abs(int(shown.astype(int).mean()) - int(SCENE.astype(int).mean())) < 10


def test_exif_orientation_is_honoured(page, tmp_path):
    im = Image.fromarray(SCENE)
    exif = im.getexif()
    exif[274] = 6  # rotate 90° clockwise to display
    shown = analyse(page, write(tmp_path, "rot.jpg", pil_bytes(im, "JPEG", exif=exif.tobytes())), NAMES)[2][page.image]
    assert shown.shape == (160, 96, 3)


def test_huge_image_is_downscaled_without_exhausting_memory(page, tmp_path):
    big = Image.new("L", (20000, 20000), 128)  # 400 MB in its own mode; decoded then reduced, never to RGB at full size
    path = write(tmp_path, "huge.png", pil_bytes(big, "PNG", compress_level=1))
    del big
    analysis, status, out = analyse(page, path, ["fcn"])
    assert "downscaled from" in status and max(out[page.image].shape[:2]) <= 1024


def test_clicks_and_models(page):
    assert click(page, None, 1, 1)[page.status] == "Load or pick an image first, then click on it."
    current, _, _ = analyse(page, SCENE, NAMES)
    assert "outside the 160×96 image" in click(page, current, -3, 5)[page.status]
    assert "no model named 'ghost'" in analyse(page, SCENE, ["ghost"], current)[1]
    assert "no model selected" in analyse(page, SCENE, [], current)[1]


@pytest.mark.parametrize("setup", ["missing", "empty", "foreign"])
def test_checkpoint_folders_without_models(make_page, tmp_path, setup):
    d = tmp_path / "ckpt"
    if setup != "missing":
        d.mkdir()
    if setup == "foreign":
        (d / "notes.txt").write_text("hello")
        (d / "model.pth").write_bytes(b"\x80\x04pickle")
        (d / "half.safetensors").write_bytes(b"xx")  # no card: not listed
    page = make_page(checkpoints=d)
    assert page.explorer.available() == []
    status = analyse(page, SCENE, ["fcn"])[1]
    assert "there is no model named 'fcn'" in status and "none available" in status
    build_app(Explorer(d))  # the app still starts, saying no checkpoints were found


def test_attribution_has_a_time_limit(make_page):
    page = make_page(attribution_time_limit=0.0)
    current, _, _ = analyse(page, SCENE, NAMES)
    last = click(page, current, 50, 40)[page.last_click]
    out = page.handlers["attribute"](current, NAMES, last, "Integrated Gradients (slower)", progress=lambda *a, **k: None)
    assert "was stopped" in out[page.status] and len(plots(out, "attr")) == SLOTS
    assert page.handlers["attribute"](current, NAMES, last, "Saliency", progress=lambda *a, **k: None)[page.status].startswith("Saliency")
    assert ATTRIBUTION_TIME_LIMIT_S == 60  # the default the README states


def test_a_broken_checkpoint_is_reported_not_raised(make_page, tmp_path, tiny_checkpoints):
    import shutil

    d = tmp_path / "ck"
    shutil.copytree(tiny_checkpoints, d)
    p = d / "fcn.safetensors"
    p.write_bytes(p.read_bytes()[:100])
    page = make_page(checkpoints=d)
    status = analyse(page, SCENE, ["fcn"])[1]
    assert "model 'fcn' cannot be loaded" in status and "truncated or corrupt" in status
    assert "Click a pixel" in analyse(page, SCENE, ["dgmn-full"])[1]


def test_model_errors_are_followed_by_a_working_request(page):
    current, _, _ = analyse(page, SCENE, NAMES)
    for names, message in ((["ghost"], "no model named 'ghost'"), ([], "no model selected"), (["../../etc/passwd"], "is not a model name")):
        kept, status, _ = analyse(page, SCENE, names, current)
        assert message in status and kept is current
        assert "Click a pixel" in analyse(page, None, NAMES, kept)[1]  # re-analysing the kept image works


def test_clicks_answer_for_the_image_now_shown_after_a_new_upload(page):
    a, _, _ = analyse(page, SCENE, ["fcn"])
    other = ContextScenes(seed=8, size=(64, 64)).scene(0).image
    b, _, out = analyse(page, other, ["fcn"], a)
    assert b.image_id != a.image_id and out[page.image].shape == (64, 64, 3)
    assert "outside the 64×64 image" in click(page, b, 100, 10, ["fcn"])[page.status]  # inside the old 160×96 image only
    out = click(page, b, 10, 10, ["fcn"])
    last, answer = out[page.last_click], out[page.inspection_json]
    assert last.image_id == b.image_id and answer["fcn"]["class_index"] == int(b.results["fcn"].prediction[10, 10])
