"""Prediction: ``Results`` (one result for a whole picture built from the boxes of its windows,
:func:`detection_results`), the model's stride (:func:`model_stride`), the predict run folder
(:func:`predict_save_dir`), the validator's matching and ``ap_per_class`` (the sliced benchmark's mAP, computed as
``yolo val`` computes it: :func:`match_detections`, :func:`box_iou`, :func:`ap_per_class`), and ``Model.predict``
from Python inside a command whose name ends in ``yolo`` (:func:`predict_in_python`, :func:`not_ultralytics_cli`).

``Model.predict`` (hence ``Model.track``) takes any program whose ``ARGV[0]`` ends in "yolo" or "ultralytics" and
whose arguments name predict/track for its own ``yolo`` command: it then runs ``predictor.predict_cli`` and returns
None instead of results. It reads its module's global ``ARGV`` (``sys.argv``) at each call.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from lcnet_yolo.plugin.compat.core import DEFAULT_CFG, get_cfg, get_save_dir

__all__ = [
    "NEUTRAL_ARGV0",
    "ap_per_class",
    "box_iou",
    "detection_results",
    "match_detections",
    "model_stride",
    "not_ultralytics_cli",
    "predict_in_python",
    "predict_save_dir",
]

NEUTRAL_ARGV0 = "lcnet-yolo-cli"  # a program name Ultralytics does not take for its own


def detection_results(orig_img: object, path: str, names: dict[int, str], boxes: object) -> object:
    """``ultralytics.engine.results.Results`` of a detector for ``orig_img`` (BGR), ``boxes`` ``(N, 6)`` as
    ``x1, y1, x2, y2, conf, cls`` in its pixels."""
    import torch
    from ultralytics.engine.results import Results

    return Results(orig_img, path=path, names=names, boxes=torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 6))


def model_stride(model: object) -> int:
    """Largest stride of a ``YOLO`` model's network (input sizes must be multiples of it)."""
    stride = getattr(getattr(model, "model", None), "stride", None)  # exported models (a file name) have none
    return int(max(stride)) if stride is not None else 32


def predict_save_dir(overrides: dict[str, object]) -> object:
    """The run folder ``predict`` would save into for these arguments (``runs/detect/predict{N}``, not created)."""
    return get_save_dir(get_cfg(DEFAULT_CFG, {"mode": "predict", "task": "detect", **overrides}))


def match_detections(pred_classes: object, true_classes: object, iou: object) -> object:
    """The detection validator's matching: ``(N, 10)`` correct flags at IoU 0.50:0.95 for predictions sorted by
    confidence, from the ``(M, N)`` IoU of targets and predictions."""
    from ultralytics.models.yolo.detect import DetectionValidator

    return DetectionValidator().match_predictions(pred_classes, true_classes, iou)


def box_iou(boxes1: object, boxes2: object) -> object:
    """Pairwise IoU ``(M, N)`` of xyxy boxes (``ultralytics.utils.metrics.box_iou``)."""
    from ultralytics.utils.metrics import box_iou as _box_iou

    return _box_iou(boxes1, boxes2)


def ap_per_class(tp: object, conf: object, pred_cls: object, target_cls: object) -> object:
    """``ultralytics.utils.metrics.ap_per_class``: its tuple, ``ap`` ``(nc, 10)`` at index 5."""
    from ultralytics.utils.metrics import ap_per_class as _ap_per_class

    return _ap_per_class(tp, conf, pred_cls, target_cls)


def predict_in_python(model: object, source: object, **args: object) -> list:
    """``model.predict(source, **args)`` as called from Python, a list of ``Results``, also inside a command whose
    name ends in ``yolo``: there ``Model.predict`` reads ``ARGV`` as the ``yolo`` command's own run, saves and
    returns nothing."""
    with not_ultralytics_cli():
        return model.predict(source, **args)


@contextlib.contextmanager
def not_ultralytics_cli() -> Iterator[None]:
    """In the block, ``Model.predict``/``track`` see the program :data:`NEUTRAL_ARGV0` (``sys.argv`` itself is left
    alone), so they return results (a generator with ``stream=True``) also inside the ``lcnet-yolo`` executable."""
    from ultralytics.engine import model as model_module

    argv = model_module.ARGV
    model_module.ARGV = [NEUTRAL_ARGV0]
    try:
        yield
    finally:
        model_module.ARGV = argv
