"""PP-LCNet: A Lightweight CPU Convolutional Neural Network (Cui et al., 2021, arXiv:2109.15099).

The network is the one PaddleClas ships in ``ppcls/arch/backbone/legendary_models/pp_lcnet.py``, written
again in PyTorch with the same module names (``conv1``, ``blocks2`` … ``blocks6``, ``last_conv``, ``fc``), so
PaddleClas checkpoints map key for key. The architecture lives in :data:`NET_CONFIG`, one row per
depthwise-separable block as in Table 1 of the paper; scales and the paper's ablations (SE placement, 5×5
kernels, activation, the 1280-channel last conv) are constructor arguments, not subclasses.

Deviations and choices, stated once:

* The stem has BatchNorm and the 1280-channel ``last_conv`` has no bias, as in PaddleClas (a popular
  PyTorch snippet of PP-LCNet drops the stem BN and adds that bias; timm's ``lcnet_*`` keep the BN but add
  the bias: ``head_bias=True`` keeps it, and :mod:`lcnet_yolo.io.weights` reports it when it is dropped).
* The SE bottleneck is ``C // 4`` channels without rounding, as in PaddleClas (timm rounds it to a multiple
  of 8, which only differs for x0.35).
* PaddleClas uses ``Dropout(mode="downscale_in_infer")`` before ``fc``: at inference it multiplies by
  ``1 - p``. PyTorch's dropout scales at training time instead, so imported PaddleClas weights get the
  ``1 - p`` factor folded into ``fc.weight`` and give PaddleClas' logits exactly.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import partial

import torch
from torch import nn

__all__ = [
    "NET_CONFIG",
    "SCALES",
    "PPLCNet",
    "make_divisible",
    "pplcnet",
    "pplcnet_x0_5",
    "pplcnet_x0_25",
    "pplcnet_x0_35",
    "pplcnet_x0_75",
    "pplcnet_x1_0",
    "pplcnet_x1_5",
    "pplcnet_x2_0",
    "pplcnet_x2_5",
]

# Table 1 of the paper, as in PaddleClas. One row per depthwise-separable block:
#             [kernel, in_c, out_c, stride, use_se]       channels are for scale 1.0
NET_CONFIG: dict[str, list[list]] = {
    "blocks2": [[3, 16, 32, 1, False]],
    "blocks3": [[3, 32, 64, 2, False], [3, 64, 64, 1, False]],
    "blocks4": [[3, 64, 128, 2, False], [3, 128, 128, 1, False]],
    "blocks5": [[3, 128, 256, 2, False]] + [[5, 256, 256, 1, False]] * 5,
    "blocks6": [[5, 256, 512, 2, True], [5, 512, 512, 1, True]],
}
STEM_CHANNELS = 16
STAGE_STRIDES = {"blocks2": 2, "blocks3": 4, "blocks4": 8, "blocks5": 16, "blocks6": 32}

# The eight scales released with the paper: scale -> (params M, FLOPs M) at 224x224, 1000 classes.
SCALES: dict[float, tuple[float, float]] = {
    0.25: (1.5, 18),
    0.35: (1.6, 29),
    0.5: (1.9, 47),
    0.75: (2.4, 99),
    1.0: (3.0, 161),
    1.5: (4.5, 342),
    2.0: (6.5, 590),
    2.5: (9.0, 906),
}
ACTIVATIONS = {
    "hardswish": nn.Hardswish,
    "relu": nn.ReLU,
    "relu6": nn.ReLU6,
    "leakyrelu": partial(nn.LeakyReLU, 0.1),  # not in the paper: a ReLU-speed activation for int8 deployment
}


def make_divisible(v: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round ``v`` to the nearest multiple of ``divisor``, never going more than 10 % below ``v``."""
    min_value = divisor if min_value is None else min_value
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


def _block_rows() -> list[tuple[str, list]]:
    return [(stage, row) for stage, rows in NET_CONFIG.items() for row in rows]


NUM_BLOCKS = len(_block_rows())
DEFAULT_SE_BLOCKS = tuple(i for i, (_, row) in enumerate(_block_rows()) if row[4])
DEFAULT_LARGE_KERNEL_BLOCKS = tuple(i for i, (_, row) in enumerate(_block_rows()) if row[0] == 5)


class ConvBNAct(nn.Sequential):
    """Conv (no bias) + BatchNorm + activation; ``groups=channels`` makes it depthwise."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1, act: str = "hardswish"):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(c_out)
        self.act = ACTIVATIONS[act]()


class SEModule(nn.Module):
    """Squeeze-and-excitation: avgpool, 1×1 conv C→C/4, ReLU, 1×1 conv C/4→C, hard-sigmoid, rescale."""

    def __init__(self, channels: int, reduction: int = 4):
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.conv1 = nn.Conv2d(channels, channels // reduction, 1)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(channels // reduction, channels, 1)
        self.hardsigmoid = nn.Hardsigmoid()

    def squeeze(self, x: torch.Tensor) -> torch.Tensor:
        """The global average, kept as C×1×1. In an ONNX export it is ``AdaptiveAvgPool2d`` (a GlobalAveragePool,
        which ONNX Runtime's int8 graph quantizes through); otherwise a kept-dims mean, which PNNX turns into an
        NCNN reduction that keeps the 2-D shape, so NCNN runs both 1×1 convs on its normal path (its global pooling
        gives a flat vector and sends them down its slow, deprecated 1-D path). Same numbers either way."""
        if torch.onnx.is_in_onnx_export():
            return self.avg_pool(x)
        return x.mean((2, 3), keepdim=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.hardsigmoid(self.conv2(self.relu(self.conv1(self.squeeze(x)))))


class DepthwiseSeparable(nn.Module):
    """The PP-LCNet block: depthwise k×k conv, optional SE, pointwise 1×1 conv; no residual."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, use_se: bool, act: str = "hardswish"):
        super().__init__()
        self.dw_conv = ConvBNAct(c_in, c_in, kernel, stride, groups=c_in, act=act)
        self.se = SEModule(c_in) if use_se else nn.Identity()
        self.pw_conv = ConvBNAct(c_in, c_out, 1, act=act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pw_conv(self.se(self.dw_conv(x)))


def check_scale(scale: float) -> float:
    """Return ``scale`` as a float if it is one of the paper's eight scales, else raise a ``ValueError``."""
    try:
        value = float(scale)
    except (TypeError, ValueError):
        value = None
    if value not in SCALES:
        valid = ", ".join(f"{s:g}" for s in SCALES)
        raise ValueError(f"PP-LCNet scale {scale!r} is not one of the released scales: {valid}")
    return value


def _check_int(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _check_block_indices(name: str, indices: Iterable[int] | None, default: tuple[int, ...]) -> frozenset[int]:
    if indices is None:
        return frozenset(default)
    if isinstance(indices, (str, bytes)) or not isinstance(indices, Iterable):
        raise ValueError(f"{name} must be a sequence of block indices 0..{NUM_BLOCKS - 1}, got {indices!r}")
    indices = frozenset(indices)
    bad = sorted(i for i in indices if not isinstance(i, int) or not 0 <= i < NUM_BLOCKS)
    if bad:
        raise ValueError(f"{name} must hold block indices 0..{NUM_BLOCKS - 1}, got {bad}")
    return indices


class PPLCNet(nn.Module):
    """PP-LCNet classifier, or a multi-scale feature extractor with ``features_only=True``.

    Args:
        scale: width multiplier, one of 0.25, 0.35, 0.5, 0.75, 1.0, 1.5, 2.0, 2.5.
        num_classes: classifier outputs (0 keeps the pooled features, like timm).
        dropout: dropout before ``fc`` (paper: 0.2).
        class_expand: channels of the 1×1 ``last_conv`` after pooling (paper: 1280).
        use_last_conv: keep ``last_conv`` (paper ablation, Table 5).
        act: ``"hardswish"`` (paper), ``"relu"``, ``"relu6"`` or ``"leakyrelu"`` (slope 0.1).
        se_blocks: indices (0..12, in table order) of blocks with SE; ``None`` = the paper's last two.
        large_kernel_blocks: indices of blocks with 5×5 depthwise kernels; ``None`` = the paper's last seven,
            ``()`` = 3×3 everywhere (paper ablation, Table 4).
        features_only: build no head; ``forward`` returns the outputs of the stages in ``out_indices``.
        out_indices: stages to return in feature mode, 0..4 = ``blocks2`` … ``blocks6`` (strides 2..32);
            the default (1, 2, 3, 4) gives strides 4, 8, 16, 32.
        in_chans: input channels (3 for RGB).
        head_bias: give ``last_conv`` a bias, as timm's ``lcnet_*`` have (PaddleClas has none).
    """

    def __init__(
        self,
        scale: float = 1.0,
        num_classes: int = 1000,
        dropout: float = 0.2,
        class_expand: int = 1280,
        use_last_conv: bool = True,
        act: str = "hardswish",
        se_blocks: Iterable[int] | None = None,
        large_kernel_blocks: Iterable[int] | None = None,
        features_only: bool = False,
        out_indices: Sequence[int] = (1, 2, 3, 4),
        in_chans: int = 3,
        head_bias: bool = False,
    ):
        super().__init__()
        self.scale = check_scale(scale)
        if act not in ACTIVATIONS:
            raise ValueError(f"activation {act!r} is not supported; choose one of {', '.join(ACTIVATIONS)}")
        _check_int("num_classes", num_classes, minimum=0)
        _check_int("class_expand", class_expand, minimum=1)
        _check_int("in_chans", in_chans, minimum=1)
        if not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
            raise ValueError(f"dropout must be a probability in [0, 1), got {dropout!r}")
        se = _check_block_indices("se_blocks", se_blocks, DEFAULT_SE_BLOCKS)
        large = _check_block_indices("large_kernel_blocks", large_kernel_blocks, DEFAULT_LARGE_KERNEL_BLOCKS)
        self.arch = {"act": act, "se_blocks": sorted(se), "large_kernel_blocks": sorted(large)}

        def ch(c: int) -> int:
            return make_divisible(c * self.scale)

        self.conv1 = ConvBNAct(in_chans, ch(STEM_CHANNELS), 3, stride=2, act=act)
        self.feature_info: list[dict] = []
        index = 0
        for stage, rows in NET_CONFIG.items():
            blocks = []
            for _, c_in, c_out, stride, _ in rows:
                kernel = 5 if index in large else 3
                blocks.append(DepthwiseSeparable(ch(c_in), ch(c_out), kernel, stride, index in se, act))
                index += 1
            self.add_module(stage, nn.Sequential(*blocks))
            self.feature_info.append({"module": stage, "num_chs": ch(rows[-1][2]), "reduction": STAGE_STRIDES[stage]})
        self.num_features = self.feature_info[-1]["num_chs"]

        self.features_only = features_only
        if features_only:
            out_indices = tuple(out_indices) if isinstance(out_indices, Iterable) else (out_indices,)
            if not out_indices or any(not isinstance(i, int) or not 0 <= i < len(NET_CONFIG) for i in out_indices):
                raise ValueError(f"out_indices must be stage indices 0..{len(NET_CONFIG) - 1}, got {out_indices}")
            self.out_indices = out_indices
            return

        self.dropout_rate = dropout
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        if use_last_conv:
            self.last_conv = nn.Conv2d(self.num_features, class_expand, 1, bias=head_bias)
            self.act = ACTIVATIONS[act]()
            self.dropout = nn.Dropout(dropout)
            self.head_hidden_size = class_expand
        else:
            self.last_conv = None
            self.head_hidden_size = self.num_features
        self.flatten = nn.Flatten(1)
        self.fc = nn.Linear(self.head_hidden_size, num_classes) if num_classes > 0 else nn.Identity()
        self.num_classes = num_classes

    @property
    def stages(self) -> list[nn.Sequential]:
        return [getattr(self, stage) for stage in NET_CONFIG]

    @property
    def channels(self) -> list[int]:
        """Channels of the feature maps returned in feature mode."""
        return [self.feature_info[i]["num_chs"] for i in self.out_indices]

    @property
    def strides(self) -> list[int]:
        """Strides (reductions) of the feature maps returned in feature mode."""
        return [self.feature_info[i]["reduction"] for i in self.out_indices]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        for stage in self.stages:
            x = stage(x)
        return x

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.avg_pool(x)
        if self.last_conv is not None:
            x = self.dropout(self.act(self.last_conv(x)))
        x = self.flatten(x)
        return x if pre_logits else self.fc(x)

    def forward_intermediates(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Outputs of the stages in ``out_indices``, strides ascending."""
        x = self.conv1(x)
        outputs = []
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i in self.out_indices:
                outputs.append(x)
            if i >= max(self.out_indices):
                break
        return outputs

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        if self.features_only:
            return self.forward_intermediates(x)
        return self.forward_head(self.forward_features(x))

    def reset_classifier(self, num_classes: int) -> None:
        """Replace ``fc`` with a freshly initialised layer of ``num_classes`` outputs."""
        if self.features_only:
            raise RuntimeError("a features_only PP-LCNet has no classifier")
        self.num_classes = num_classes
        self.fc = nn.Linear(self.head_hidden_size, num_classes) if num_classes > 0 else nn.Identity()


def pplcnet(scale: float = 1.0, **kwargs) -> PPLCNet:
    """PP-LCNet at any of the paper's eight scales; keyword arguments go to :class:`PPLCNet`."""
    return PPLCNet(scale=scale, **kwargs)


def _named_scale(scale: float):
    def build(**kwargs) -> PPLCNet:
        return PPLCNet(scale=scale, **kwargs)

    tag = f"{scale:g}".replace(".", "_") if scale % 1 else f"{scale:.1f}".replace(".", "_")
    build.__name__ = build.__qualname__ = f"pplcnet_x{tag}"
    build.__doc__ = f"PP-LCNet x{scale:g} (paper: {SCALES[scale][0]} M params, {SCALES[scale][1]} M FLOPs at 224)."
    return build


pplcnet_x0_25 = _named_scale(0.25)
pplcnet_x0_35 = _named_scale(0.35)
pplcnet_x0_5 = _named_scale(0.5)
pplcnet_x0_75 = _named_scale(0.75)
pplcnet_x1_0 = _named_scale(1.0)
pplcnet_x1_5 = _named_scale(1.5)
pplcnet_x2_0 = _named_scale(2.0)
pplcnet_x2_5 = _named_scale(2.5)
