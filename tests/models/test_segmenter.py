import pytest
import torch

from dgmn import DGMN, NonLocal2d
from dgmn.models import build_segmenter, insert_dgmn, load_torchvision_weights, resnet18, resnet50


@pytest.mark.parametrize("context, cfg", [
    ("none", {}), ("gpool", {}), ("nonlocal", {}),
    ("dgmn", dict(dilations=(1,), groups=0, random_walk=False)),
    ("dgmn", dict(dilations=(1, 3, 6), groups=4, random_walk=True)),
])
@pytest.mark.parametrize("size", [(128, 128), (72, 100)])
def test_segmenter_runs_at_any_size(context, cfg, size):
    m = build_segmenter("small", context, 8, channels=32, **cfg)
    y = m(torch.randn(2, 3, *size))
    assert y.shape == (2, 8, *size)
    y.mean().backward()


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown context module 'aspp'"):
        build_segmenter("small", "aspp", 8)
    with pytest.raises(ValueError, match="unknown backbone 'vgg'"):
        build_segmenter("vgg", "none", 8)
    with pytest.raises(ValueError, match=r"expected an image batch of shape \(B, 3, H, W\)"):
        build_segmenter("small", "none", 8, channels=16)(torch.zeros(1, 1, 32, 32))


def test_dilated_resnet_has_output_stride_8_and_torchvision_names(tmp_path):
    r = resnet18()
    assert r(torch.zeros(1, 3, 64, 64)).shape == (1, 512, 8, 8)
    names = set(r.state_dict())
    for k in ("conv1.weight", "bn1.running_mean", "layer1.0.conv1.weight", "layer2.0.downsample.0.weight",
              "layer4.1.bn2.weight", "layer3.1.conv2.weight"):
        assert k in names
    assert resnet50().layer4[0].conv2.dilation == (2, 2) and resnet50().layer4[1].conv2.dilation == (4, 4)
    # a torchvision-style state dict (with its fc layer) saved locally loads by name
    from safetensors.torch import save_file

    state = {k: torch.randn_like(v, dtype=torch.float32) if v.is_floating_point() else v for k, v in r.state_dict().items()}
    state["fc.weight"], state["fc.bias"] = torch.zeros(1000, 512), torch.zeros(1000)
    save_file(state, str(tmp_path / "r18.safetensors"))
    r2 = resnet18()
    assert load_torchvision_weights(r2, tmp_path / "r18.safetensors") == []
    assert torch.equal(r2.layer3[1].conv2.weight, state["layer3.1.conv2.weight"])


def test_insert_dgmn_after_every_3x3_conv_of_a_stage():
    r = resnet50()
    insert_dgmn(r, "layer4", dilations=(1, 4), groups=4)
    layers = [m for m in r.layer4.modules() if isinstance(m, DGMN)]
    assert len(layers) == 3 and all(l.channels == 512 for l in layers)
    assert not any(isinstance(m, DGMN) for m in r.layer3.modules())
    assert r(torch.zeros(1, 3, 32, 32)).shape == (1, 2048, 4, 4)
    r18 = insert_dgmn(resnet18(), "layer3", dilations=(1,), random_walk=False)
    assert len([m for m in r18.layer3.modules() if isinstance(m, DGMN)]) == 4  # two 3×3 convs per BasicBlock
    with pytest.raises(ValueError, match="no stage 'layer9'"):
        insert_dgmn(resnet18(), "layer9")


def test_nonlocal_context_is_the_baseline_block():
    assert isinstance(build_segmenter("small", "nonlocal", 8, channels=32).context, NonLocal2d)
