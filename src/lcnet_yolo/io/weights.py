"""Pretrained PP-LCNet weights from PaddleClas, timm or lcnet-yolo itself, through one entry point.

:func:`load_pretrained` reads the file, recognises its format from the bytes (zip, pickle or safetensors
header) and from the key names, maps foreign names to ours, checks every shape, and loads:

* **PaddleClas** ``.pdparams``: a pickled dict of numpy arrays with our module names (``pp_lcnet.py`` uses the
  same ones). It is read without Paddle by :func:`read_pdparams`, a restricted unpickler that only builds numpy
  arrays and plain containers and refuses anything else before it runs. :func:`convert_paddle_state_dict`
  renames BatchNorm statistics (``_mean``/``_variance``), transposes the Linear weight (Paddle stores
  ``[in, out]``) and folds PaddleClas' ``Dropout(mode="downscale_in_infer")`` factor ``1 - p`` into
  ``fc.weight``, so eval logits equal PaddleClas' logits.
* **timm** ``lcnet_*`` (``.safetensors``, ``.pth``, ``.bin``): :func:`convert_timm_state_dict` maps the keys by
  flattened block order (timm splits the stages differently). timm's head conv has a bias ours lacks: it is
  dropped with a warning unless the model was built with ``head_bias=True``.
* **lcnet-yolo** state dicts (``.pt``/``.pth`` via ``torch.load(weights_only=True)`` with an empty allow-list:
  tensors and plain containers only, or ``.safetensors``).

Every BatchNorm that receives weights gets ``eps = 1e-5``, the value the weights were trained with
(Ultralytics sets 1e-3 on every BatchNorm of a detector when it builds one).
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from lcnet_yolo.io.errors import WeightsError, WeightsFileNotFoundError
from lcnet_yolo.io.hub import resolve_weights
from lcnet_yolo.io.weight_files import (
    convert_paddle_state_dict,
    convert_timm_state_dict,
    read_checkpoint,
    read_pdparams,
)
from lcnet_yolo.io.weight_loading import PRETRAINED_BN_EPS, LoadReport, load_weights_file, pplcnet_of

__all__ = [
    "PRETRAINED_BN_EPS",
    "LoadReport",
    "WeightsError",
    "WeightsFileNotFoundError",
    "convert_paddle_state_dict",
    "convert_timm_state_dict",
    "load_pretrained",
    "read_checkpoint",
    "read_pdparams",
]


def load_pretrained(model: nn.Module, path: str | Path, strict: bool = True) -> LoadReport:
    """Load PaddleClas, timm or lcnet-yolo PP-LCNet weights into ``model`` and say what was done.

    The format is recognised from the file contents and key names, not the extension. With ``strict=True``
    (default) any missing key, unexpected key or shape mismatch raises one :class:`WeightsError` listing them
    and leaves the model untouched; ``strict=False`` loads what fits. Head keys (``last_conv``, ``fc``) are
    skipped, not errors, for a model without that head (``features_only``, ``PPLCNetBackbone``,
    ``num_classes=0``). Every BatchNorm that receives weights gets ``eps=1e-5``, the value they were trained
    with. PaddleClas' inference-time dropout scaling is folded into ``fc.weight`` (``p = model.dropout_rate``).
    A model that contains one PP-LCNet (an Ultralytics detector built from our YAMLs) loads into that module.
    ``path`` may also be a name from :data:`lcnet_yolo.io.hub.WEIGHTS` (``"imagenet"``, ``"imagenet-ssld"``,
    ``"timm"``): the publisher's file for the model's scale, downloaded once and cached.
    """
    path = resolve_weights(path, pplcnet_of(model).scale)  # a name -> its cached file
    return load_weights_file(model, path, strict)
