"""``python -m dgmn.data scene``: the app's demonstration scene for a seed, deterministic, with its labels."""
import hashlib

import cv2
import numpy as np
import pytest

from dgmn.data.__main__ import main
from dgmn.data.mixed_scene import mixed_scene


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_scene_is_the_apps_scene_for_the_seed_with_exact_labels(tmp_path, capsys):
    img, lab, col = tmp_path / "scene.png", tmp_path / "labels.png", tmp_path / "colour.png"
    assert main(["scene", "--seed", "3", "--out", str(img), "--labels", str(lab), "--labels-colour", str(col)]) == 0
    assert capsys.readouterr().out.splitlines() == [f"wrote {img}", f"wrote {lab}", f"wrote {col}"]
    want = mixed_scene(3)
    assert np.array_equal(cv2.cvtColor(cv2.imread(str(img)), cv2.COLOR_BGR2RGB), want.image)
    labels = cv2.imread(str(lab), cv2.IMREAD_UNCHANGED)
    assert labels.dtype == np.uint8 and labels.ndim == 2 and np.array_equal(labels, want.truth)
    assert {4, 5} <= set(np.unique(labels).tolist())  # a house and a boathouse
    assert cv2.imread(str(col)).shape == (128, 256, 3)


def test_the_same_seed_writes_the_same_bytes_and_another_seed_does_not(tmp_path):
    a, b, c = tmp_path / "a.png", tmp_path / "b.png", tmp_path / "c.png"
    main(["scene", "--seed", "3", "--out", str(a)])
    main(["scene", "--seed", "3", "--out", str(b)])
    main(["scene", "--seed", "4", "--out", str(c)])
    assert digest(a) == digest(b) != digest(c)


@pytest.mark.parametrize("args, message", [
    (["--seed", "-1"], "a scene seed is a whole number from 0 to"),
    (["--out", "{tmp}/missing/scene.png"], "the folder {tmp}/missing does not exist"),
    (["--out", "{tmp}/scene.jpg"], "give a .png file name"),
])
def test_bad_arguments_stop_with_one_line(tmp_path, capsys, args, message):
    args = [a.format(tmp=tmp_path) for a in args]
    with pytest.raises(SystemExit) as exc:
        main(["scene", *args])
    said = str(exc.value.code) if isinstance(exc.value.code, str) else capsys.readouterr().err
    assert message.format(tmp=tmp_path) in said
    assert not list(tmp_path.iterdir())


def test_the_preview_command_still_works(tmp_path):
    out = tmp_path / "samples.png"
    assert main(["--preview", str(out), "--count", "2"]) == 0 and cv2.imread(str(out)).shape == (256, 258, 3)
