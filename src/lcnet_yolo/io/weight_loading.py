"""A PP-LCNet weights file into a model: format recognised from the contents, foreign names mapped, every shape
checked, and a :class:`LoadReport` of what was done (:func:`load_weights_file`).

It takes files only, so that :mod:`lcnet_yolo.io.hub` can check a download with it; weights *names*
(``"imagenet"``) are resolved by :func:`lcnet_yolo.io.weights.load_pretrained`, the public entry point.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from lcnet_yolo.io.errors import WeightsError
from lcnet_yolo.io.weight_files import (
    convert_paddle_state_dict,
    convert_timm_state_dict,
    detect_format,
    existing_weights_file,
    read_checkpoint,
)
from lcnet_yolo.nn.pplcnet import SCALES, make_divisible
from lcnet_yolo.nn.registry import find_backbone

__all__ = ["PRETRAINED_BN_EPS", "LoadReport", "load_weights_file", "pplcnet_of"]

PRETRAINED_BN_EPS = 1e-5  # PaddleClas and timm train PP-LCNet with BatchNorm eps 1e-5
HEAD_PREFIXES = ("last_conv.", "fc.")
SCALE_PROBE_KEY = "blocks6.1.pw_conv.conv.weight"  # out channels make_divisible(512 * scale) differ per scale


@dataclass
class LoadReport:
    """What :func:`load_weights_file` did: the format it found, what it loaded, and everything it did not."""

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
# Loading a file.


def pplcnet_of(model: nn.Module) -> nn.Module:
    """The one PP-LCNet in ``model`` (``model`` itself, or a detector's backbone); :class:`WeightsError` if none."""
    try:
        return find_backbone(model)
    except ValueError as error:
        raise WeightsError(str(error)) from None


def _scale_of(state: Mapping[str, torch.Tensor]) -> float | None:
    if SCALE_PROBE_KEY not in state:
        return None
    probe = state[SCALE_PROBE_KEY]
    if getattr(probe, "ndim", 0) < 1:
        return None  # a 0-dim tensor: reported as a shape mismatch
    channels = probe.shape[0]
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


def load_weights_file(model: nn.Module, path: str | Path, strict: bool = True) -> LoadReport:
    """Load the PaddleClas, timm or lcnet-yolo PP-LCNet weights file ``path`` into ``model`` (the rules of
    :func:`lcnet_yolo.io.weights.load_pretrained`, which also takes weights names)."""
    container = model
    model = pplcnet_of(container)
    path = existing_weights_file(path)
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
        warnings.warn(f"{path}: {message}", stacklevel=3)  # the caller of load_pretrained
    return report
