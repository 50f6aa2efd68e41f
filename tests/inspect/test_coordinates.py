"""The one image ↔ feature mapping, and the figures drawing from the positions the records carry."""
import numpy as np
import pytest

from dgmn.inspect.coordinates import feature_cells, feature_to_image, image_to_feature, nearest_feature, nearest_index


def test_round_trip_and_align_corners_false_convention():
    for fy, fx in [(0, 0), (3.25, 7.5), (-0.5, 15.5)]:
        y, x = feature_to_image(fy, fx, (16, 32), (128, 256))
        assert image_to_feature(y, x, (16, 32), (128, 256)) == pytest.approx((fy, fx))
    # the centre of feature cell 0 lies at image pixel 3.5 at stride 8 (bilinear upsampling, align_corners=False)
    assert feature_to_image(0, 0, (16, 32), (128, 256)) == (3.5, 3.5)
    ys = np.arange(5.0)
    assert np.allclose(image_to_feature(ys, ys, (16, 32), (128, 256))[0], (ys + 0.5) / 8 - 0.5)  # arrays too


def test_nearest_is_rounded_and_clamped():
    assert nearest_index(-3.2, 99, (4, 5)) == (0, 4)
    assert nearest_feature(127, 0, (16, 32), (128, 256)) == (15, 0)
    assert nearest_feature(30, 100, (12, 20), (96, 160)) == (round(30.5 / 8 - 0.5), round(100.5 / 8 - 0.5))


def test_feature_cells_centre_the_heat_map_cells_on_the_mapping():
    c = feature_cells((16, 32), (128, 256))
    assert (c["y0"], c["x0"]) == feature_to_image(0, 0, (16, 32), (128, 256)) and (c["dy"], c["dx"]) == (8, 8)


def test_nodes_figure_draws_where_the_record_says():
    """viz does not recompute positions: moving a record's positions moves the markers and the walk lines."""
    from dgmn.inspect.records import DGMNQuery, GraphNode
    from dgmn.viz import nodes_figure

    n = GraphNode(0, 1, 0, [0.0, 0.0], [1.0, 1.0], [1.0, 1.0], [12.3, 45.6], True, 1.0, None, [1.0], 1.0, uniform_image=[3.0, 4.0])
    fig = nodes_figure(np.zeros((64, 64, 3), np.uint8), DGMNQuery([8, 8], [0, 0], 0, 1, 1, 1.0, [1.0], [1], [n]), (5, 5))
    marker = next(t for t in fig.data if t.name == "rate 1")
    walk = next(t for t in fig.data if t.name == "walks, rate 1")
    assert (marker.y[0], marker.x[0]) == (12.3, 45.6) and list(walk.y[:2]) == [3.0, 12.3] and list(walk.x[:2]) == [4.0, 45.6]
