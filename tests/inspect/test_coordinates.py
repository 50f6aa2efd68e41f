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


@pytest.mark.parametrize("align_corners", [False, True])
def test_the_mapping_is_where_bilinear_upsampling_reads(align_corners):
    """Upsampling a map whose values are their own positions gives, at every image pixel, image_to_feature of it
    (inside the map, where no clamping happens), for both conventions."""
    import torch
    import torch.nn.functional as F

    h, w, H, W = 9, 17, 65, 129
    fy, fx = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij")
    up = F.interpolate(torch.stack([fy, fx])[None], size=(H, W), mode="bilinear", align_corners=align_corners)[0]
    Y, X = torch.meshgrid(torch.arange(H, dtype=torch.float64), torch.arange(W, dtype=torch.float64), indexing="ij")
    ey, ex = image_to_feature(Y, X, (h, w), (H, W), align_corners)
    inside = (ey >= 0) & (ey <= h - 1) & (ex >= 0) & (ex <= w - 1)
    assert inside.float().mean() > 0.8
    assert torch.allclose(up[0][inside], ey[inside]) and torch.allclose(up[1][inside], ex[inside])
    assert feature_to_image(*image_to_feature(12.0, 40.0, (h, w), (H, W), align_corners), (h, w), (H, W), align_corners) \
        == pytest.approx((12.0, 40.0))


def test_corner_to_corner_on_769_crops_is_the_dgmn2_receptive_field_centre():
    """DGMN2's 3×3 stride-2 padding-1 convs centre feature position i of a stride-S map at pixel S·i; on mmseg's
    769-pixel crops (maps 193, 97, 49, 25) the align_corners=True mapping says the same."""
    for S, n in ((4, 193), (8, 97), (16, 49), (32, 25)):
        i = np.arange(n, dtype=float)
        assert np.allclose(feature_to_image(i, i, (n, n), (769, 769), align_corners=True)[0], S * i)
    assert feature_to_image(0.0, 0.0, (1, 1), (5, 5), align_corners=True) == (0.0, 0.0)
    assert image_to_feature(3.0, 3.0, (1, 1), (5, 5), align_corners=True) == (0.0, 0.0)
