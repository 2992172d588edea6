"""Layers that Ultralytics model YAMLs name. YAML rows pass positional arguments, so these are thin wrappers.

Two details make PP-LCNet behave inside an Ultralytics model exactly as it does on its own:

* **BatchNorm eps.** Ultralytics' ``initialize_weights`` sets every module whose type *is* ``nn.BatchNorm2d`` to
  ``eps=1e-3, momentum=0.03``. PP-LCNet's ImageNet weights were trained with ``eps=1e-5``, so the backbone's
  norms are :class:`BatchNorm2d` (a named subclass) which that rule leaves alone; the backbone keeps eps 1e-5
  through every model rebuild (YAML, checkpoint, resume) and takes Ultralytics' momentum 0.03.
* **Conv+BN fusion.** Ultralytics' ``model.fuse()`` (called by its predictor, validator and exporter) folds BN
  into the preceding conv for modules that are its own ``Conv``. The backbone's conv+BN+activation units are
  :class:`FusableConvBNAct`, which are also ``Conv`` instances with the same ``conv``/``bn``/``act`` attributes,
  so Ultralytics fuses them too. State-dict keys do not change.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from lcnet_yolo.nn.pplcnet import ACTIVATIONS, ConvBNAct, PPLCNet
from lcnet_yolo.plugin.compat import ClassifyHead, FusableConv

BACKBONE_BN_EPS = 1e-5
BACKBONE_BN_MOMENTUM = 0.03


class BatchNorm2d(nn.BatchNorm2d):
    """``nn.BatchNorm2d`` under its own type, so Ultralytics' weight initialisation keeps PP-LCNet's eps 1e-5."""


class FusableConvBNAct(ConvBNAct, FusableConv):
    """PP-LCNet's conv+BN+activation, also an Ultralytics ``Conv`` (:class:`~lcnet_yolo.plugin.compat.FusableConv`)
    so that ``model.fuse()`` folds its BN.

    ``forward`` is ``ConvBNAct``'s (the ``nn.Sequential`` one); after fusion Ultralytics switches the instance to
    ``Conv.forward_fuse`` (``act(conv(x))``), which is the same computation with BN folded into ``conv``.
    """


def adopt_ultralytics_fusion(module: nn.Module, keep_bn_eps: bool = False) -> nn.Module:
    """Turn every PP-LCNet conv+BN+act unit inside ``module`` into a :class:`FusableConvBNAct` (in place).

    With ``keep_bn_eps`` the BatchNorms also become :class:`BatchNorm2d` with eps 1e-5 (backbone: the value its
    ImageNet weights were trained with); otherwise they stay plain and take Ultralytics' settings like its own
    layers (neck). Parameters and state-dict keys do not change.
    """
    for m in module.modules():
        if type(m) is ConvBNAct:
            m.__class__ = FusableConvBNAct
        elif keep_bn_eps and type(m) is nn.BatchNorm2d:
            m.__class__ = BatchNorm2d
            m.eps, m.momentum = BACKBONE_BN_EPS, BACKBONE_BN_MOMENTUM
    return module


class PPLCNetBackbone(PPLCNet):
    """PP-LCNet as a YOLO backbone: returns the feature maps of ``out_indices`` (default P3, P4, P5).

    YAML row: ``[-1, 1, PPLCNetBackbone, [scale, out_indices, se_blocks, large_kernel_blocks, act]]`` (all but
    ``scale`` optional), then one ``Index`` row per feature map. ``out_indices`` counts stages ``blocks2`` …
    ``blocks6`` as 0 … 4 (strides 2 … 32); ``se_blocks`` / ``large_kernel_blocks`` are block indices 0..12
    (``[]`` = none, ``null`` = the paper's) and ``act`` is ``hardswish`` (paper), ``relu``, ``relu6`` or ``leakyrelu``.
    """

    def __init__(
        self,
        scale: float = 1.0,
        out_indices: Sequence[int] = (2, 3, 4),
        se_blocks: Sequence[int] | None = None,
        large_kernel_blocks: Sequence[int] | None = None,
        act: str = "hardswish",
        **kwargs,
    ):
        super().__init__(
            scale,
            features_only=True,
            out_indices=out_indices,
            se_blocks=se_blocks,
            large_kernel_blocks=large_kernel_blocks,
            act=act,
            **kwargs,
        )
        adopt_ultralytics_fusion(self, keep_bn_eps=True)


class Classifier(ClassifyHead):
    """PaddleClas' PP-LCNet head for Ultralytics' classify task: avgpool, 1×1 conv (no bias), act, dropout, fc.

    YAML row: ``[-1, 1, Classifier, [c_in, nc]]`` (optionally ``hidden, dropout, act``). It is an Ultralytics
    ``Classify`` (through :class:`~lcnet_yolo.plugin.compat.ClassifyHead`; same outputs: logits in training,
    ``(softmax, logits)`` in eval, softmax when exported, and a ``linear`` attribute that Ultralytics resizes to the
    dataset's classes), and its YAML name ``Classifier`` is one Ultralytics' task guess reads as "classify".
    Sub-module names follow PaddleClas: ``last_conv``, ``fc``.
    """

    def __init__(self, c1: int, c2: int, hidden: int = 1280, dropout: float = 0.2, act: str = "hardswish"):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.last_conv = nn.Conv2d(c1, hidden, 1, bias=False)
        self.act = ACTIVATIONS[act]()
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(hidden, c2)

    @property
    def linear(self) -> nn.Linear:
        """The final classifier layer, under the name Ultralytics uses."""
        return self.fc

    def __setattr__(self, name: str, value) -> None:
        # Ultralytics resizes the head with ``head.linear = nn.Linear(...)``: store it as ``fc``.
        super().__setattr__("fc" if name == "linear" else name, value)

    def forward(self, x: list[torch.Tensor] | torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        if isinstance(x, list):
            x = torch.cat(x, 1)
        x = self.fc(self.drop(self.act(self.last_conv(self.pool(x))).flatten(1)))
        if self.training:
            return x
        y = x.softmax(1)
        return y if self.export else (y, x)
