"""Property-based tests of the public constructors: valid input builds and runs, invalid input raises ValueError."""

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lcnet_yolo.nn import SCALES, PPLCNet
from lcnet_yolo.nn.layers import PPLCNetBackbone
from lcnet_yolo.nn.pplcnet import ACTIVATIONS

FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
block_index = st.integers(0, 12)
valid_scales = st.sampled_from(sorted(SCALES))


@FAST
@given(
    scale=st.sampled_from([0.25, 0.35, 0.5]),
    out_indices=st.lists(st.integers(0, 4), min_size=1, max_size=5, unique=True).map(sorted),
    se_blocks=st.lists(block_index, max_size=4),
    large_kernel_blocks=st.lists(block_index, max_size=4),
    act=st.sampled_from(sorted(ACTIVATIONS)),
    height=st.integers(8, 80),
    width=st.integers(8, 80),
)
def test_valid_feature_extractors_build_and_return_the_promised_shapes(
    scale, out_indices, se_blocks, large_kernel_blocks, act, height, width
):
    model = PPLCNet(
        scale,
        features_only=True,
        out_indices=out_indices,
        se_blocks=se_blocks,
        large_kernel_blocks=large_kernel_blocks,
        act=act,
    ).eval()
    with torch.no_grad():
        outputs = model(torch.randn(1, 3, height, width))
    assert [o.shape[1] for o in outputs] == model.channels
    for output, stride in zip(outputs, model.strides, strict=True):
        assert output.shape[2:] == (-(-height // stride), -(-width // stride))  # ceil division, "same" padding


@FAST
@given(scale=valid_scales, num_classes=st.integers(0, 50), in_chans=st.integers(1, 4), dropout=st.floats(0, 0.99))
def test_valid_classifiers_build_and_give_logits(scale, num_classes, in_chans, dropout):
    model = PPLCNet(scale, num_classes=num_classes, in_chans=in_chans, dropout=dropout).eval()
    with torch.no_grad():
        logits = model(torch.randn(2, in_chans, 32, 32))
    assert logits.shape == (2, num_classes if num_classes else model.head_hidden_size)


invalid_kwargs = st.one_of(
    st.fixed_dictionaries({"scale": st.floats(allow_nan=True).filter(lambda s: s not in SCALES)}),
    st.fixed_dictionaries({"scale": st.one_of(st.text(max_size=3), st.none(), st.lists(st.floats(), max_size=2))}),
    st.fixed_dictionaries({"num_classes": st.one_of(st.integers(max_value=-1), st.floats(), st.text(max_size=2))}),
    st.fixed_dictionaries({"in_chans": st.integers(max_value=0)}),
    st.fixed_dictionaries({"dropout": st.one_of(st.floats(min_value=1.0), st.floats(max_value=-1e-9))}),
    st.fixed_dictionaries({"act": st.text(max_size=8).filter(lambda a: a not in ACTIVATIONS)}),
    st.fixed_dictionaries({"se_blocks": st.lists(st.integers().filter(lambda i: not 0 <= i <= 12), min_size=1)}),
    st.fixed_dictionaries({"large_kernel_blocks": st.one_of(st.integers(), st.text(min_size=1, max_size=3))}),
    st.fixed_dictionaries(
        {"features_only": st.just(True), "out_indices": st.lists(st.integers().filter(lambda i: not 0 <= i <= 4))}
    ),
)


@FAST
@given(kwargs=invalid_kwargs)
def test_invalid_arguments_raise_value_error_never_key_or_index_error(kwargs):
    kwargs = {"scale": 1.0, **kwargs}
    with pytest.raises(ValueError):
        PPLCNet(**kwargs)


@FAST
@given(scale=st.one_of(st.floats(), st.integers(), st.text(max_size=4)), out=st.lists(st.integers(-3, 8), max_size=4))
def test_yaml_backbone_layer_accepts_only_valid_arguments(scale, out):
    valid = scale in SCALES and bool(out) and all(0 <= i <= 4 for i in out)
    if valid:
        assert len(PPLCNetBackbone(scale, out).channels) == len(out)
    else:
        with pytest.raises(ValueError):
            PPLCNetBackbone(scale, out)
