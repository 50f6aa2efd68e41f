import cv2
import numpy as np
import pytest
import torch

from dgmn.data import CLASSES, ContextScenes
from dgmn.data.context_scenes import BOATHOUSE, HOUSE, ROAD, WATER


def test_same_seed_and_index_give_the_same_scene():
    a, b = ContextScenes(seed=3), ContextScenes(seed=3)
    for i in (0, 7, 123):
        sa, sb = a.scene(i), b.scene(i)
        assert np.array_equal(sa.image, sb.image) and np.array_equal(sa.label, sb.label)
    assert not np.array_equal(a.scene(0).image, ContextScenes(seed=4).scene(0).image)
    assert not np.array_equal(a.scene(0).image, a.scene(1).image)


def test_tensors_and_classes():
    ds = ContextScenes(seed=0, length=4)
    x, y = ds[2]
    assert x.shape == (3, 128, 128) and x.dtype == torch.float32 and y.shape == (128, 128) and y.dtype == torch.int64
    assert set(torch.unique(y).tolist()) <= set(range(len(CLASSES)))
    with pytest.raises(IndexError):
        ds[4]


@pytest.mark.parametrize("size", [(96, 160), (256, 256), (64, 64)])
def test_any_size_works(size):
    ds = ContextScenes(seed=1, size=size)
    labels = [ds.scene(i).label for i in range(12)]
    assert all(lab.shape == size for lab in labels)
    found = set(np.unique(np.concatenate([lab.ravel() for lab in labels])).tolist())
    assert {HOUSE, BOATHOUSE, WATER, ROAD} <= found


def scenes(n=150, seed=11):
    ds = ContextScenes(seed=seed)
    return [ds.scene(i) for i in range(n)]


def test_the_deciding_context_lies_outside_a_40_pixel_window():
    """For the paired buildings, a 41×41 window around almost every pixel holds no water and no road."""
    kernel = np.ones((41, 41), np.uint8)
    inside = {HOUSE: [0, 0], BOATHOUSE: [0, 0]}
    for sc in scenes():
        cue = cv2.dilate(((sc.label == WATER) | (sc.label == ROAD)).astype(np.uint8), kernel)
        for cls in (HOUSE, BOATHOUSE):
            m = sc.label == cls
            inside[cls][0] += int((cue[m] > 0).sum())
            inside[cls][1] += int(m.sum())
    for cls, (near, total) in inside.items():
        assert total > 1000
        assert near / total < 0.05, (CLASSES[cls], near / total)


def test_paired_buildings_share_one_appearance_distribution():
    """House and boathouse pixels and their 41×41 surroundings have the same statistics."""
    stats = {HOUSE: [], BOATHOUSE: []}
    sizes = {HOUSE: [], BOATHOUSE: []}
    for sc in scenes(200, seed=5):
        for cls, y0, y1, x0, x1 in sc.buildings:
            m = sc.label[y0:y1, x0:x1] == cls
            stats[cls].append(sc.image[y0:y1, x0:x1][m].mean(0))
            sizes[cls].append(((y1 - y0), (x1 - x0)))
    for key in (stats, sizes):
        h, b = np.array(key[HOUSE], float), np.array(key[BOATHOUSE], float)
        assert len(h) > 50 and len(b) > 50
        # difference of means well inside the spread: the classes cannot be told apart by these
        assert np.all(np.abs(h.mean(0) - b.mean(0)) < 0.25 * np.sqrt((h.var(0) + b.var(0)) / 2) + 1.0)


def test_mixed_scenes_are_the_common_case_and_hold_both_buildings():
    sc = scenes(300, seed=2)
    mixed = [s for s in sc if s.mixed]
    assert 0.75 < len(mixed) / len(sc) < 0.95
    both = [s for s in mixed if {HOUSE, BOATHOUSE} <= {b[0] for b in s.buildings}]
    assert len(both) / len(mixed) > 0.4
    for s in sc:  # a building's class is the material of the strip below it
        for cls, y0, y1, x0, x1 in s.buildings:
            below = s.label[-1, x0:x1]
            assert np.all(below == (WATER if cls == BOATHOUSE else ROAD))


def test_too_small_size_is_refused():
    with pytest.raises(ValueError, match="at least 32×32"):
        ContextScenes(size=16)
