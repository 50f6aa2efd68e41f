import cv2
import numpy as np
import pytest

from dgmn.data import cityscapes, image_folder
from dgmn.data.augment import IGNORE, random_scale_crop_flip


def make_cityscapes(root, split="train", cities=("aachen", "bochum"), n=2, size=(24, 48)):
    rng = np.random.default_rng(0)
    for city in cities:
        (root / "leftImg8bit" / split / city).mkdir(parents=True, exist_ok=True)
        (root / "gtFine" / split / city).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            stem = f"{city}_{i:06d}_000019"
            cv2.imwrite(str(root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png"), rng.integers(0, 255, (*size, 3), dtype=np.uint8))
            lab = rng.integers(0, 19, size, dtype=np.uint8)
            lab[0, :] = 255
            cv2.imwrite(str(root / "gtFine" / split / city / f"{stem}_gtFine_labelTrainIds.png"), lab)
    return root


def test_cityscapes_layout_is_read(tmp_path):
    make_cityscapes(tmp_path)
    ds = cityscapes(tmp_path, "train")
    assert len(ds) == 4 and len(ds.classes) == 19
    x, y = ds[0]
    assert x.shape == (3, 24, 48) and y.shape == (24, 48) and int(y.max()) == 255


def test_cityscapes_errors_say_what_is_missing(tmp_path):
    with pytest.raises(ValueError, match="leftImg8bit/train does not exist"):
        cityscapes(tmp_path, "train")
    make_cityscapes(tmp_path)
    next((tmp_path / "gtFine" / "train" / "aachen").glob("*.png")).unlink()
    with pytest.raises(ValueError, match="labelTrainIds.png is missing"):
        cityscapes(tmp_path, "train")


def test_image_folder(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    for i in range(3):
        cv2.imwrite(str(tmp_path / "images" / f"a{i}.jpg"), np.full((10, 12, 3), 40 * i, np.uint8))
        cv2.imwrite(str(tmp_path / "masks" / f"a{i}.png"), np.full((10, 12), i, np.uint8))
    ds = image_folder(tmp_path)
    assert len(ds) == 3 and ds.classes == ("class 0", "class 1", "class 2")
    assert ds[2][1].unique().tolist() == [2]


def test_augmentation_keeps_image_and_label_aligned():
    rng = np.random.default_rng(0)
    image = np.zeros((40, 60, 3), np.uint8)
    label = np.zeros((40, 60), np.uint8)
    image[:, 30:] = 200
    label[:, 30:] = 1
    for _ in range(20):
        im, lab = random_scale_crop_flip(image, label, rng, (48, 48), (0.5, 1.5), True)
        assert im.shape == (48, 48, 3) and lab.shape == (48, 48)
        valid = lab != IGNORE
        ones, zeros = im[..., 0][valid & (lab == 1)], im[..., 0][valid & (lab == 0)]
        # bilinear resizing blurs one column at the boundary; everything else must agree with its label
        assert ones.size == 0 or np.mean(ones > 100) > 0.9
        assert zeros.size == 0 or np.mean(zeros < 100) > 0.9
