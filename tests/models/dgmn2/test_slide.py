"""Sliding-window inference against a direct, independent statement of mmseg's algorithm."""
import pytest
import torch
import torch.nn.functional as F

from dgmn.models.dgmn2 import slide_inference

from .helpers import small_model


def mmseg_slide(model, img, crop, stride, num_classes):
    """mmseg 0.x ``EncoderDecoder.slide_inference``, written out: padded crop logits summed, divided by the counts."""
    h_stride, w_stride = stride
    h_crop, w_crop = crop
    batch, _, h_img, w_img = img.shape
    h_grids = max(h_img - h_crop + h_stride - 1, 0) // h_stride + 1
    w_grids = max(w_img - w_crop + w_stride - 1, 0) // w_stride + 1
    preds = img.new_zeros((batch, num_classes, h_img, w_img))
    count = img.new_zeros((batch, 1, h_img, w_img))
    for h_idx in range(h_grids):
        for w_idx in range(w_grids):
            y1, x1 = h_idx * h_stride, w_idx * w_stride
            y2, x2 = min(y1 + h_crop, h_img), min(x1 + w_crop, w_img)
            y1, x1 = max(y2 - h_crop, 0), max(x2 - w_crop, 0)
            logit = model(img[:, :, y1:y2, x1:x2])
            preds += F.pad(logit, (x1, preds.shape[3] - x2, y1, preds.shape[2] - y2))
            count[:, :, y1:y2, x1:x2] += 1
    assert (count == 0).sum() == 0
    return preds / count


@pytest.fixture(scope="module")
def model():
    return small_model("fpn", num_classes=4)


def test_equals_mmseg_on_an_image_larger_than_one_crop(model):
    img = torch.randn(2, 3, 61, 80)
    calls = []
    with torch.no_grad():
        ours = slide_inference(model, img, crop=33, stride=21, progress=lambda done, total: calls.append((done, total)))
        ref = mmseg_slide(model, img, (33, 33), (21, 21), 4)
    # rows: (61 − 33 + 20)//21 + 1 = 3, cols: (80 − 33 + 20)//21 + 1 = 4
    assert calls == [(i, 12) for i in range(1, 13)]
    assert ours.shape == (2, 4, 61, 80)
    assert torch.allclose(ours, ref, atol=1e-6, rtol=0)
    # overlapping crops average: the result differs from one whole-image forward
    assert not torch.allclose(ours, model(img), atol=1e-3)


def test_rectangular_crops_and_an_image_smaller_than_the_crop(model):
    img = torch.randn(1, 3, 29, 70)
    with torch.no_grad():
        ours = slide_inference(model, img, crop=(40, 33), stride=(30, 17), num_classes=4)
        ref = mmseg_slide(model, img, (40, 33), (30, 17), 4)
        whole = slide_inference(model, img, crop=100, stride=50)
    assert torch.allclose(ours, ref, atol=1e-6, rtol=0)
    assert torch.allclose(whole, model(img), atol=1e-6)  # one crop: the image itself


def test_counts_average_overlaps():
    class Ones(torch.nn.Module):
        num_classes = 2

        def forward(self, x):
            return torch.ones(x.shape[0], 2, *x.shape[2:]) * x[:, :1].mean()

    img = torch.full((1, 3, 50, 50), 3.0)
    out = slide_inference(Ones(), img, crop=20, stride=7)
    assert torch.allclose(out, torch.full_like(out, 3.0))


def test_bad_arguments_are_named(model):
    with pytest.raises(ValueError, match="crop must be a positive int"):
        slide_inference(model, torch.zeros(1, 3, 8, 8), crop=0)
    with pytest.raises(ValueError, match="expected"):
        slide_inference(model, torch.zeros(1, 3, 40, 40), crop=33, stride=21, num_classes=7)
