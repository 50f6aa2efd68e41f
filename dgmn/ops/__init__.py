"""Low-level ops: the dynamic aggregation op, its node sampler, and the convs built on them."""
from .deform_conv import deform_conv2d
from .dilated_conv import dilated_conv2d
from .dynamic_aggregate import IMPLS, all_finite, check_inputs, default_impl, dynamic_aggregate, use_impl
from .reference import dynamic_aggregate_reference, node_grid, sample_nodes
from .sampled_attention import SAMPLED_ATTENTION_KERNEL, sampled_attention, sampled_attention_reference

__all__ = [
    "IMPLS", "all_finite", "check_inputs", "default_impl", "deform_conv2d", "dilated_conv2d", "dynamic_aggregate",
    "dynamic_aggregate_reference", "node_grid", "sample_nodes", "use_impl",
    "SAMPLED_ATTENTION_KERNEL", "sampled_attention", "sampled_attention_reference",
]
