"""Light neck blocks for CPU detectors, built from the PP-LCNet depthwise-separable block (Cui et al., 2021).

The YOLOv8 PAN spends most of its time in dense 3×3 convolutions (C2f bottlenecks, the stride-2 ``Conv`` rows).
On a CPU a depthwise k×k + pointwise 1×1 pair costs a fraction of that at the same receptive field, which is the
paper's main argument; :class:`LCBlock` brings that block into the neck. Channel changes stay in the YAML as
Ultralytics' 1×1 ``Conv`` rows, so Ultralytics' channel bookkeeping (``parse_model``) stays exact.
"""

from __future__ import annotations

import torch
from torch import nn

from lcnet_yolo.nn.layers import adopt_ultralytics_fusion
from lcnet_yolo.nn.pplcnet import ConvBNAct, DepthwiseSeparable


class LCBlock(nn.Module):
    """``n`` PP-LCNet blocks (depthwise k×k, optional SE, pointwise 1×1) at constant width, with a residual.

    YAML row: ``[-1, 1, LCBlock, [channels, n, kernel, se]]``; ``channels`` must equal the input channels
    (Ultralytics passes unknown layers their YAML arguments as they are and keeps the input width).

    Args:
        channels: input and output channels.
        n: number of depthwise-separable blocks in the stack.
        kernel: depthwise kernel size (the paper uses 5×5 in its deep stages).
        se: add squeeze-and-excitation to every block.
        shortcut: add the input to the output of the stack.
        act: activation of the blocks (``"hardswish"`` as in the paper).
    """

    def __init__(
        self,
        channels: int,
        n: int = 1,
        kernel: int = 5,
        se: bool = False,
        shortcut: bool = True,
        act: str = "hardswish",
    ):
        super().__init__()
        if n < 1:
            raise ValueError(f"LCBlock needs n >= 1 blocks, got {n}")
        self.channels = channels
        self.blocks = nn.Sequential(*(DepthwiseSeparable(channels, channels, kernel, 1, se, act) for _ in range(n)))
        self.shortcut = shortcut
        adopt_ultralytics_fusion(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.blocks(x)
        return x + y if self.shortcut else y


class LCDown(nn.Module):
    """Stride-2 depthwise k×k + BN + activation at constant width: the PAN's bottom-up downsampling.

    YAML row: ``[-1, 1, LCDown, [channels, kernel]]``; replaces YOLOv8's dense stride-2 3×3 ``Conv``, whose
    pointwise mixing the following 1×1 ``Conv`` row already does.
    """

    def __init__(self, channels: int, kernel: int = 3, act: str = "hardswish"):
        super().__init__()
        self.channels = channels
        self.down = adopt_ultralytics_fusion(ConvBNAct(channels, channels, kernel, stride=2, groups=channels, act=act))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(x)
