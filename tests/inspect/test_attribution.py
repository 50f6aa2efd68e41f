import pytest
import torch

from dgmn.inspect import attribute_pixel
from dgmn.models import build_segmenter


def small_model(context="dgmn"):
    torch.manual_seed(0)
    cfg = dict(dilations=(1, 3), groups=4) if context == "dgmn" else {}
    return build_segmenter("small", context, 8, channels=16, backbone_cfg={"width": 16}, **cfg).eval()


def test_saliency_is_the_gradient_of_the_pixel_logit():
    m = small_model()
    img = torch.randn(1, 3, 48, 48)
    sal = attribute_pixel(m, img, 20, 30, 5, "saliency")
    x = img.clone().requires_grad_()
    m(x)[0, 5, 20, 30].backward()
    assert torch.allclose(sal, x.grad[0].abs().sum(0), atol=1e-6)


def test_integrated_gradients_completeness_and_progress():
    m = small_model("none")
    img = torch.randn(1, 3, 40, 40)
    seen = []
    # signed IG sums to logit(image) − logit(0) (completeness); check it via the unsigned map's upper bound
    ig = attribute_pixel(m, img, 10, 12, 2, "integrated_gradients", n_steps=16, internal_batch_size=4, progress=seen.append)
    assert ig.shape == (40, 40) and (ig >= 0).all() and ig.sum() > 0
    with torch.no_grad():
        delta = float(m(img)[0, 2, 10, 12] - m(torch.zeros_like(img))[0, 2, 10, 12])
    assert ig.sum() >= abs(delta) * 0.5
    assert seen and seen[-1] == 1.0 and seen == sorted(seen)


def test_the_effective_receptive_field_of_a_local_model_is_local():
    m = small_model("none")
    sal = attribute_pixel(m, torch.randn(1, 3, 128, 128), 20, 20, 3)
    assert sal[90:, 90:].sum() == 0  # far beyond the 55 px receptive field
    assert sal[10:30, 10:30].sum() > 0


def test_bad_pixel_or_method():
    m = small_model("none")
    with pytest.raises(ValueError, match="outside the 32×32 image"):
        attribute_pixel(m, torch.randn(3, 32, 32), 40, 0, 1)
    with pytest.raises(ValueError, match="method must be one of"):
        attribute_pixel(m, torch.randn(3, 32, 32), 4, 0, 1, "gradcam")


def test_a_sliding_window_model_attributes_the_logit_its_crops_average(tmp_path):
    """A converted DGMN2 model analyses a large image crop by crop and averages the logits where crops overlap: the
    attribution is the gradient of that average at the pixel (float64, against autograd through the whole
    slide_inference), not of one whole-image pass — which differs."""
    import copy

    import dgmn
    from dgmn.convert import convert_dgmn2
    from dgmn.inspect.inspector import slide_windows
    from dgmn.models.dgmn2 import slide_inference

    from ..models.dgmn2.fixtures import fixture

    convert_dgmn2(fixture("fpn.pth"), tmp_path, name="dgmn2-fpn")
    model = copy.deepcopy(dgmn.load_model(tmp_path / "dgmn2-fpn")).double().eval()
    torch.manual_seed(3)
    img = torch.randn(1, 3, 65, 97, dtype=torch.float64)
    slide = ((33, 41), (24, 30))  # 3 × 3 crops; pixel (30, 45) lies in 2 × 2 of them
    y, x, cls = 30, 45, 4
    sal = attribute_pixel(model, img, y, x, cls, "saliency", crops=slide_windows((65, 97), slide))
    ref = img.clone().requires_grad_()
    slide_inference.__wrapped__(model, ref, *slide)[0, cls, y, x].backward()  # every crop, with autograd (no no_grad)
    assert torch.allclose(sal, ref.grad[0].abs().sum(0), rtol=1e-9, atol=1e-12)
    whole = attribute_pixel(model, img, y, x, cls, "saliency")
    assert not torch.allclose(sal, whole, atol=1e-6)
