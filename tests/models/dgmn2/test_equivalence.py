"""Our port against DGMN2's original code: the fixtures' logits (each head, two inputs, one non-square), the
backbone's and the FPN's intermediate outputs, one model's attention internals block by block, and the full-size
parameter counts. Tolerance: 1e-4 relative (max |ours − theirs| / max |theirs|), float32."""
import pytest
import torch
from safetensors.torch import load_file

import dgmn
from dgmn.convert import convert_dgmn2, load_plain_checkpoint
from dgmn.models.dgmn2 import DGMN2Config, map_keys
from dgmn.ops import sample_nodes

from .fixtures import HEADS, fixture, manifest

RTOL = 1e-4


def rel(ours: torch.Tensor, ref: torch.Tensor) -> float:
    assert ours.shape == ref.shape, (ours.shape, ref.shape)
    return ((ours.double() - ref.double()).abs().max() / ref.double().abs().max()).item()


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    out = tmp_path_factory.mktemp("dgmn2-converted")
    models = {}
    for head in HEADS:
        convert_dgmn2(fixture(f"{head}.pth"), out, name=head)
        models[head] = dgmn.load_model(out / head)
    return models


@pytest.mark.parametrize("head", HEADS)
def test_logits_equal_the_originals(converted, head):
    model = converted[head]
    expected = load_file(fixture(f"{head}.expected.safetensors"))
    inputs = sorted(k.split(".")[0] for k in expected if k.endswith(".input"))
    assert len(inputs) >= 2
    for x in inputs:
        image = expected[f"{x}.input"]
        with torch.no_grad():
            feats = model.backbone(image)
            logits = model(image)
        assert rel(logits, expected[f"{x}.logits"]) < RTOL, (head, x)
        recorded = sorted(k for k in expected if k.startswith(f"{x}.backbone."))
        # the original returns all four stages (FPN, MLA) or only the last (Naive, PUP)
        ours = feats if len(recorded) == 4 else feats[-1:]
        for k, f in zip(recorded, ours):
            assert rel(f, expected[k]) < RTOL, k
        if head == "fpn":
            with torch.no_grad():
                neck = model.neck(feats)
            for i, f in enumerate(neck):
                assert rel(f, expected[f"{x}.neck.{i}"]) < RTOL, f"{x}.neck.{i}"


@pytest.mark.parametrize("head", HEADS)
def test_inferred_architecture_is_the_manifests(converted, head):
    arch = manifest()["heads"][head]["architecture"]
    cfg: DGMN2Config = converted[head].config
    bb = arch["backbone"]
    assert list(cfg.backbone.embed_dims) == bb["embed_dims"] and list(cfg.backbone.num_heads) == bb["num_heads"]
    assert list(cfg.backbone.mlp_ratios) == bb["mlp_ratios"] and list(cfg.backbone.depths) == bb["depths"]
    assert [list(t) for t in cfg.backbone.table_sizes] == bb["relpos_fea_size"]
    assert cfg.backbone.ln_eps == bb["layernorm_eps"] and cfg.backbone.qkv_bias == bb["qkv_bias"]
    assert cfg.pyramid == (bb["output"] == "neck")
    dh = arch["decode_head"]
    assert cfg.num_classes == dh["num_classes"] and cfg.align_corners == dh["align_corners"]
    if head == "fpn":
        assert cfg.head_cfg == {"neck_channels": arch["neck"]["out_channels"], "channels": dh["channels"]}
    elif head == "setr_mla":
        assert cfg.head_cfg == {"mla_channels": dh["mlahead_channels"], "img_size": dh["img_size"]}
    elif head == "setr_naive":
        assert cfg.head_cfg == {"img_size": dh["img_size"]}
    else:
        assert cfg.head_cfg == {"channels": dh["channels"]}
    n = manifest()["heads"][head]
    assert sum(p.numel() for p in converted[head].parameters()) == n["num_params"]
    assert len(converted[head].state_dict()) == n["num_state_dict_keys"]
    state, _ = load_plain_checkpoint(fixture(f"{head}.pth"))
    assert set(map_keys(state)[0]) == set(converted[head].state_dict())  # the key map is the identity


def test_full_size_parameter_counts_are_the_manifests():
    counts = manifest()["full_size_params"]
    for size, n in counts["backbone"].items():
        with torch.device("meta"):
            model = DGMN2Config.preset(size, "fpn").build()
        assert sum(p.numel() for p in model.backbone.parameters()) == n, size
    for head, by_size in counts["model"].items():
        for size, n in by_size.items():
            with torch.device("meta"):
                model = DGMN2Config.preset(size, head).build()
            assert sum(p.numel() for p in model.parameters()) == n, (head, size)
            assert len(model.state_dict()) == counts["state_dict_keys"][head][size], (head, size)


def test_attention_internals_equal_the_originals(converted):
    """Each recorded block of the FPN model: offsets, position logits, sampled keys, attention weights, the
    message before the projection, the attention's and the block's output."""
    rec = load_file(fixture("fpn.attention.safetensors"))
    model = converted["fpn"]
    blocks = sorted({k.rsplit(".", 1)[0] for k in rec})
    assert {b.split('.')[1] for b in blocks} == {'stage1', 'stage2', 'stage3', 'stage4'}
    for b in blocks:
        _, stage, block = b.split(".")
        blk = getattr(model.backbone, f"block{stage[len('stage'):]}")[int(block[len("block"):])]
        H, W = (int(v) for v in rec[f"{b}.hw"])
        x = rec[f"{b}.attn_input"]
        B, N, C = x.shape
        h, d = blk.attn.num_heads, blk.attn.head_dim
        with torch.no_grad():
            it = blk.attn.internals(x, H, W)
            block_out = blk(rec[f"{b}.block_input"], H, W)
            _, k, _, offset = blk.attn._prepare(x, H, W)
            keys = sample_nodes(k, offset, (1,), 3)  # (B·h, d, 9, H, W)
        assert rel(it.offsets.reshape(B * h, 18, H, W), rec[f"{b}.offset"]) < RTOL, b
        assert rel(it.position.reshape(B * h, 9, H, W).permute(0, 2, 3, 1), rec[f"{b}.pos_logits"]) < RTOL, b
        assert rel(it.weights.reshape(B, h, 9, N).permute(0, 1, 3, 2).unsqueeze(3), rec[f"{b}.attn_weights"]) < RTOL, b
        assert rel(it.message.reshape(B, h, d, N).permute(0, 3, 1, 2).reshape(B, N, C), rec[f"{b}.attn_pre_proj"]) < RTOL, b
        assert rel(it.out, rec[f"{b}.attn_output"]) < RTOL, b
        assert rel(block_out, rec[f"{b}.block_output"]) < RTOL, b
        if f"{b}.unfold_k" in rec:  # (B·h, d·9, N), channel c·9 + k
            assert rel(keys.reshape(B * h, d * 9, N), rec[f"{b}.unfold_k"]) < RTOL, b
