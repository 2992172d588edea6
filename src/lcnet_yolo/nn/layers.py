"""Layers that Ultralytics model YAMLs name. YAML rows pass positional arguments, so these are thin wrappers."""

from __future__ import annotations

from collections.abc import Sequence

from lcnet_yolo.nn.pplcnet import PPLCNet


class PPLCNetBackbone(PPLCNet):
    """PP-LCNet as a YOLO backbone: returns the feature maps of ``out_indices`` (default P3, P4, P5).

    YAML row: ``[-1, 1, PPLCNetBackbone, [scale, out_indices]]``, then one ``Index`` row per feature map.
    """

    def __init__(self, scale: float = 1.0, out_indices: Sequence[int] = (2, 3, 4), **kwargs):
        super().__init__(scale, features_only=True, out_indices=tuple(out_indices), **kwargs)
