"""The two network changes measured in BENCHMARKS.md ("Defaults that train") and rejected, applied to a built model.

* ``scaled_init``: depthwise convs (backbone, neck) and the stem multiplied by ``sqrt(fan_in / 576)`` right after
  construction, i.e. started at the per-weight scale of a dense 3x3 conv over 64 channels (BatchNorm follows, so
  the forward pass is unchanged; Adam then turns them as fast as YOLOv8n's dense filters).
* ``bn_momentum``: the momentum of the backbone's BatchNorms (lcnet-yolo uses Ultralytics' 0.03).
"""

from __future__ import annotations

import math

from torch import nn

from lcnet_yolo.nn.layers import PPLCNetBackbone
from lcnet_yolo.nn.neck import LCBlock, LCDown

REFERENCE_FAN_IN = 3 * 3 * 64


def apply_variants(model: nn.Module, scaled_init: bool = False, bn_momentum: float | None = None) -> nn.Module:
    for module in model.modules():
        if isinstance(module, (PPLCNetBackbone, LCBlock, LCDown)):
            convs = [m for m in module.modules() if isinstance(m, nn.Conv2d)]
            for conv in convs:
                depthwise = conv.groups > 1 and conv.groups == conv.in_channels
                stem = isinstance(module, PPLCNetBackbone) and conv is module.conv1.conv
                fan_in = conv.weight[0].numel()
                if scaled_init and (depthwise or stem) and fan_in < REFERENCE_FAN_IN and not hasattr(conv, "_scaled"):
                    conv.weight.data.mul_(math.sqrt(fan_in / REFERENCE_FAN_IN))
                    conv._scaled = True
            if bn_momentum is not None and isinstance(module, PPLCNetBackbone):
                for bn in module.modules():
                    if isinstance(bn, nn.BatchNorm2d):
                        bn.momentum = bn_momentum
    return model


def trainer_with_variants(base: type, scaled_init: bool = False, bn_momentum: float | None = None) -> type:
    """``base`` (an Ultralytics trainer class) whose freshly built models get :func:`apply_variants`."""

    class Trainer(base):
        def get_model(self, *args, **kwargs):
            return apply_variants(super().get_model(*args, **kwargs), scaled_init, bn_momentum)

    return Trainer
