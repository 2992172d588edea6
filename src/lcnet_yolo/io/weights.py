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

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from lcnet_yolo.io.errors import WeightsError, WeightsFileNotFoundError
from lcnet_yolo.io.weight_files import (
    convert_paddle_state_dict,
    convert_timm_state_dict,
    detect_format,
    existing_weights_file,
    read_checkpoint,
    read_pdparams,
)
from lcnet_yolo.nn.pplcnet import SCALES, make_divisible
from lcnet_yolo.nn.registry import find_backbone

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

PRETRAINED_BN_EPS = 1e-5  # PaddleClas and timm train PP-LCNet with BatchNorm eps 1e-5
HEAD_PREFIXES = ("last_conv.", "fc.")
SCALE_PROBE_KEY = "blocks6.1.pw_conv.conv.weight"  # out channels make_divisible(512 * scale) differ per scale


@dataclass
class LoadReport:
    """What :func:`load_pretrained` did: the format it found, what it loaded, and everything it did not."""

    path: str
    format: str  # "paddleclas", "timm" or "lcnet_yolo"
    checkpoint_scale: float | None
    model_scale: float | None
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # head keys of a model without that head
    dropped: list[str] = field(default_factory=list)  # keys the model has no place for, by choice
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """True when every model tensor was loaded and every checkpoint tensor was used or deliberately skipped."""
        return not (self.missing or self.unexpected or self.mismatched)

    def __str__(self) -> str:
        lines = [f"{self.path}: {self.format} weights, {len(self.loaded)} tensors loaded"]
        for title, items in (
            ("missing", self.missing),
            ("unexpected", self.unexpected),
            ("shape mismatch", [f"{k} {list(a)} (model {list(b)})" for k, a, b in self.mismatched]),
            ("skipped (head the model does not have)", self.skipped),
            ("dropped", self.dropped),
        ):
            if items:
                lines.append(f"  {title}: {_short_list(items)}")
        lines += [f"  warning: {w}" for w in self.warnings] + [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


def _short_list(items: list[str], limit: int = 8) -> str:
    more = f" … and {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


# --------------------------------------------------------------------------------------------------------------
# The entry point.


def _scale_of(state: Mapping[str, torch.Tensor]) -> float | None:
    if SCALE_PROBE_KEY not in state:
        return None
    channels = state[SCALE_PROBE_KEY].shape[0]
    return next((s for s in SCALES if make_divisible(512 * s) == channels), None)


def _strict_error(report: LoadReport) -> WeightsError:
    lines = [f"{report.path} does not fit the model ({report.format} weights)"]
    if report.checkpoint_scale and report.model_scale and report.checkpoint_scale != report.model_scale:
        lines[0] = (
            f"{report.path} holds PP-LCNet x{report.checkpoint_scale:g} weights but the model is "
            f"PP-LCNet x{report.model_scale:g}; build the model with scale={report.checkpoint_scale:g}"
        )
    if report.missing:
        lines.append(f"  missing in the file ({len(report.missing)}): {_short_list(report.missing)}")
    if report.unexpected:
        lines.append(f"  unexpected in the file ({len(report.unexpected)}): {_short_list(report.unexpected)}")
    if report.mismatched:
        shapes = [f"{k} {list(a)} vs model {list(b)}" for k, a, b in report.mismatched]
        lines.append(f"  shape mismatches ({len(shapes)}): {_short_list(shapes, 4)}")
    lines.append("  (strict=False loads what fits and returns the report)")
    return WeightsError("\n".join(lines))


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
    from lcnet_yolo.io.hub import resolve_weights  # hub checks downloads with this function: imported here

    container = model
    try:
        model = find_backbone(container)
    except ValueError as error:
        raise WeightsError(str(error)) from None
    path = existing_weights_file(resolve_weights(path, model.scale))  # a name -> its cached file
    raw = read_checkpoint(path)
    submodule = next(name for name, m in container.named_modules() if m is model)
    fmt = detect_format(raw)
    notes = []
    if fmt == "paddleclas":
        model_has_last_conv = getattr(model, "last_conv", None) is not None
        dropout_rate = float(getattr(model, "dropout_rate", 0.0)) if model_has_last_conv else 0.0
        state = convert_paddle_state_dict(raw, dropout_rate)
        if dropout_rate and "fc.weight" in state and "last_conv.weight" in state:
            notes.append(f"fc.weight scaled by 1 - {dropout_rate:g} (PaddleClas dropout scales at inference)")
    elif fmt == "timm":
        state = convert_timm_state_dict(raw)
    else:
        state = {k: torch.as_tensor(v) for k, v in raw.items()}

    target = model.state_dict()
    model_scale = getattr(model, "scale", None) or _scale_of(target)
    report = LoadReport(str(path), fmt, _scale_of(state), model_scale, notes=notes)
    if submodule:
        report.notes.append(f"loaded into the model's PP-LCNet submodule '{submodule}'")
    has_module = {prefix: any(k.startswith(prefix) for k in target) for prefix in HEAD_PREFIXES}
    to_load = {}
    for key, value in state.items():
        if key in target:
            if tuple(value.shape) == tuple(target[key].shape):
                to_load[key] = value
            else:
                report.mismatched.append((key, tuple(value.shape), tuple(target[key].shape)))
        elif key.startswith(HEAD_PREFIXES) and not has_module[key.split(".")[0] + "."]:
            report.skipped.append(key)
        elif key == "last_conv.bias":
            report.dropped.append(key)
            report.warnings.append(
                "the file's head conv has a bias (timm conv_head.bias) that the model lacks: dropped, so logits "
                "differ from the source; build the model with head_bias=True to keep it"
            )
        elif not key.endswith("num_batches_tracked"):
            report.unexpected.append(key)
    for key in target:
        if key in state or key.endswith("num_batches_tracked"):
            continue
        if key == "last_conv.bias" and "last_conv.weight" in state:
            to_load[key] = torch.zeros_like(target[key])
            report.notes.append("last_conv.bias set to zero: the file's head conv has no bias")
        else:
            report.missing.append(key)
    if strict and not report.complete:
        raise _strict_error(report)

    model.load_state_dict(to_load, strict=False)
    report.loaded = sorted(to_load)
    bn_count = 0
    for name, module in model.named_modules():
        loaded_into = isinstance(module, nn.modules.batchnorm._BatchNorm) and any(
            f"{name}.{tensor}" in to_load for tensor in ("weight", "bias", "running_mean", "running_var")
        )
        if loaded_into:
            module.eps = PRETRAINED_BN_EPS
            bn_count += 1
    if bn_count:
        report.notes.append(f"BatchNorm eps set to {PRETRAINED_BN_EPS:g} on {bn_count} layers (training value)")
    for message in report.warnings:
        warnings.warn(f"{path}: {message}", stacklevel=2)
    return report
