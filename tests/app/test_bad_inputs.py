"""Every bad input of issue 5 gets a specific message through the user's own path, and the next valid request works.

Fixtures are generated here (nothing large is committed)."""
import io

import cv2
import numpy as np
import pytest
from PIL import Image

import app
from dgmn.data import ContextScenes
from dgmn.inspect.explorer import Explorer

NAMES = ["dgmn-full", "fcn-nonlocal", "fcn"]
SCENE = ContextScenes(seed=5, size=(96, 160)).scene(0).image


@pytest.fixture(scope="module")
def handlers(tiny_checkpoints):
    return app.Handlers(Explorer(tiny_checkpoints), examples=[])


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
def test_bad_upload_gets_a_message_and_keeps_what_the_user_had(handlers, tmp_path, name):
    factory, message = BAD[name]
    current, *_ = handlers.analyse(SCENE, NAMES)
    kept, shown, status, *figs = handlers.analyse(write(tmp_path, name, factory()), NAMES, current)
    assert message in status and status.startswith("⚠")
    assert kept is current and all(f == {"__type__": "update"} for f in [shown, *figs])
    # the user's image still answers clicks, and a following valid upload works
    assert handlers.click(kept, NAMES, 0.5, True, None, _select(5, 5))[0].startswith("Pixel")
    assert "Click a pixel" in handlers.analyse(write(tmp_path, "ok.png", png(cv2.cvtColor(SCENE, cv2.COLOR_RGB2BGR))), NAMES, kept)[2]


@pytest.mark.parametrize("name", list(GOOD))
def test_unusual_images_are_read(handlers, tmp_path, name):
    factory, shape, notice = GOOD[name]
    analysis, shown, status, *_ = handlers.analyse(write(tmp_path, name, factory()), NAMES)
    assert shown.shape == shape and "Click a pixel" in status and notice in status


def test_animated_gif_uses_the_first_frame(handlers, tmp_path):
    analysis, shown, *_ = handlers.analyse(write(tmp_path, "anim.gif", GOOD["anim.gif"][0]()), NAMES)
    assert abs(int(shown.astype(int).mean()) - int(SCENE.astype(int).mean())) < 10


def test_exif_orientation_is_honoured(handlers, tmp_path):
    im = Image.fromarray(SCENE)
    exif = im.getexif()
    exif[274] = 6  # rotate 90° clockwise to display
    analysis, shown, *_ = handlers.analyse(write(tmp_path, "rot.jpg", pil_bytes(im, "JPEG", exif=exif.tobytes())), NAMES)
    assert shown.shape == (160, 96, 3)


def test_huge_image_is_downscaled_without_exhausting_memory(handlers, tmp_path):
    big = Image.new("L", (20000, 20000), 128)  # 400 MB in its own mode; decoded then reduced, never to RGB at full size
    path = write(tmp_path, "huge.png", pil_bytes(big, "PNG", compress_level=1))
    del big
    analysis, shown, status, *_ = handlers.analyse(path, ["fcn"])
    assert "downscaled from" in status and max(shown.shape[:2]) <= 1024


def test_clicks_and_models(handlers):
    assert handlers.click(None, NAMES, 0.5, True, None, _select(1, 1))[0] == "Load or pick an image first, then click on it."
    current, *_ = handlers.analyse(SCENE, NAMES)
    assert "outside the 160×96 image" in handlers.click(current, NAMES, 0.5, True, None, _select(-3, 5))[0]
    assert "no model named 'ghost'" in handlers.analyse(SCENE, ["ghost"], current)[2]
    assert "no model selected" in handlers.analyse(SCENE, [], current)[2]


@pytest.mark.parametrize("setup", ["missing", "empty", "foreign"])
def test_checkpoint_folders_without_models(tmp_path, setup):
    d = tmp_path / "ckpt"
    if setup != "missing":
        d.mkdir()
    if setup == "foreign":
        (d / "notes.txt").write_text("hello")
        (d / "model.pth").write_bytes(b"\x80\x04pickle")
        (d / "half.safetensors").write_bytes(b"xx")  # no card: not listed
    h = app.Handlers(Explorer(d), examples=[])
    assert h.explorer.available() == []
    status = h.analyse(SCENE, ["fcn"])[2]
    assert "there is no model named 'fcn'" in status and "none available" in status
    app.build_app(Explorer(d))  # the app still starts, saying no checkpoints were found


def _select(x, y):
    import gradio as gr

    return gr.SelectData(None, {"index": [x, y], "value": None, "selected": True})


def test_attribution_has_a_time_limit(handlers):
    current, *_ = handlers.analyse(SCENE, NAMES)
    _, _, last, *_ = handlers.click(current, NAMES, 0.5, True, None, _select(50, 40))
    handlers.attribution_time_limit = 0.0
    try:
        status, *figs = handlers.attribute(current, NAMES, last, "Integrated Gradients (slower)", progress=lambda *a, **k: None)
    finally:
        handlers.attribution_time_limit = app.ATTRIBUTION_TIME_LIMIT_S
    assert "was stopped" in status and len(figs) == app.SLOTS
    assert handlers.attribute(current, NAMES, last, "Saliency", progress=lambda *a, **k: None)[0].startswith("Saliency")


def test_a_broken_checkpoint_is_reported_not_raised(tmp_path, tiny_checkpoints):
    import shutil

    d = tmp_path / "ck"
    shutil.copytree(tiny_checkpoints, d)
    p = d / "fcn.safetensors"
    p.write_bytes(p.read_bytes()[:100])
    h = app.Handlers(Explorer(d), examples=[])
    status = h.analyse(SCENE, ["fcn"])[2]
    assert "model 'fcn' cannot be loaded" in status and "truncated or corrupt" in status
    assert "Click a pixel" in h.analyse(SCENE, ["dgmn-full"])[2]


def test_model_errors_are_followed_by_a_working_request(handlers):
    current, *_ = handlers.analyse(SCENE, NAMES)
    for names, message in ((["ghost"], "no model named 'ghost'"), ([], "no model selected"), (["../../etc/passwd"], "is not a model name")):
        kept, shown, status, *_ = handlers.analyse(SCENE, names, current)
        assert message in status and kept is current
        assert "Click a pixel" in handlers.analyse(None, NAMES, kept)[2]  # re-analysing the kept image works


def test_clicks_answer_for_the_image_now_shown_after_a_new_upload(handlers):
    a, *_ = handlers.analyse(SCENE, ["fcn"])
    other = ContextScenes(seed=8, size=(64, 64)).scene(0).image
    b, shown, *_ = handlers.analyse(other, ["fcn"], a)
    assert b.image_id != a.image_id and shown.shape == (64, 64, 3)
    status, answer, last, *_ = handlers.click(b, ["fcn"], 0.5, True, None, _select(100, 10))
    assert "outside the 64×64 image" in status  # (100, 10) was inside the old 160×96 image, not the new one
    status, answer, last, *_ = handlers.click(b, ["fcn"], 0.5, True, None, _select(10, 10))
    assert last["image_id"] == b.image_id and answer["fcn"]["class_index"] == int(b.results["fcn"].prediction[10, 10])
