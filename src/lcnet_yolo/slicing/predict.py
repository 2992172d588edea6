"""``predict_sliced``: one Ultralytics ``Results`` for a whole large picture, predicted window by window."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from lcnet_yolo.plugin import compat
from lcnet_yolo.slicing import geo
from lcnet_yolo.slicing.core import (
    WHOLE_PICTURE,
    SliceError,
    check_slice,
    merge_detections,
    slice_windows,
    to_picture,
)

WINDOWS_PER_FORWARD = 4
MAX_PICTURE_PIXELS = 1 << 28  # beyond ~268 MP the Results holds a blank stand-in, not the raster's pixels
# predict arguments that concern saving or showing the whole picture, not the prediction of one window
_NOT_FOR_WINDOWS = {
    "save", "save_txt", "save_conf", "save_crop", "save_frames", "show", "show_labels", "show_conf", "show_boxes",
    "line_width", "project", "name", "exist_ok", "source", "stream", "mode", "task", "batch", "visualize",
}  # fmt: skip


class Picture:
    """A picture read window by window: a BGR array in memory, an image file, or a raster read with rasterio."""

    def __init__(self, source: str | Path | np.ndarray) -> None:
        self.raster: geo.Raster | None = None
        if isinstance(source, np.ndarray):
            if source.ndim != 3 or source.shape[2] != 3 or source.dtype != np.uint8:
                raise SliceError(f"a picture must be a BGR uint8 HxWx3 array, got {source.dtype} {source.shape}")
            self.path, self.array = "image0.jpg", source
        elif geo.is_raster(source):
            self.path, self.raster = str(source), geo.Raster(source)
        else:
            self.path, self.array = str(source), read_bgr(source)
        self.height, self.width = (
            (self.raster.height, self.raster.width) if self.raster else self.array.shape[:2]
        )  # fmt: skip

    def read(self, window: np.ndarray) -> np.ndarray:
        """Pixels of ``x0, y0, x1, y1`` as BGR ``uint8``."""
        x0, y0, x1, y1 = (int(v) for v in window)
        if self.raster is not None:
            return np.ascontiguousarray(self.raster.read((x0, y0, x1, y1))[..., ::-1])
        return np.ascontiguousarray(self.array[y0:y1, x0:x1])

    def whole(self) -> np.ndarray:
        """The whole picture (BGR); a blank stand-in of the same shape for a raster too large to hold."""
        if self.raster is None:
            return self.array
        if self.height * self.width > MAX_PICTURE_PIXELS:
            return np.broadcast_to(np.zeros((1, 1, 3), np.uint8), (self.height, self.width, 3))
        return self.read(np.array([0, 0, self.width, self.height]))

    def close(self) -> None:
        if self.raster is not None:
            self.raster.close()


def read_bgr(path: str | Path) -> np.ndarray:
    """An image file as BGR ``uint8`` (as Ultralytics reads it); :class:`SliceError` when it cannot be decoded."""
    import cv2

    try:
        pixels = cv2.imdecode(np.fromfile(str(path), np.uint8), cv2.IMREAD_COLOR)
    except (OSError, ValueError) as error:
        raise SliceError(f"cannot read picture {path}: {error}") from None
    if pixels is None:
        raise SliceError(f"cannot read picture {path}: not a decodable image")
    return pixels


def predict_sliced(
    model: Any,
    source: str | Path | np.ndarray,
    slice: int = 640,
    overlap: float = 0.2,
    full: bool = False,
    batch: int = WINDOWS_PER_FORWARD,
    **predict_args: Any,
) -> Any:
    """Predict a large picture in overlapping ``slice`` x ``slice`` windows and return ONE Ultralytics ``Results``
    for the whole picture.

    Each window is predicted at the model's input size (``imgsz``, as ``predict`` would), ``batch`` windows per
    forward pass; boxes are shifted back into the picture and merged across windows (see
    :mod:`lcnet_yolo.slicing.core`). ``full=True`` adds one whole-picture pass for objects larger than a window.
    ``source`` is a file (GeoTIFFs are read window by window with the ``[geo]`` extra) or a BGR array; other
    keyword arguments (``conf``, ``iou``, ``imgsz``, ``device``, ``classes``, ...) go to ``model.predict``.
    """
    if isinstance(model, str | Path):
        from lcnet_yolo.io.checkpoints import load_yolo

        model = load_yolo(model)
    picture = Picture(source)
    try:
        return predict_picture(model, picture, slice, overlap, full, batch, **predict_args)
    finally:
        picture.close()


def predict_picture(
    model: Any,
    picture: Picture,
    size: int,
    overlap: float,
    full: bool = False,
    batch: int = WINDOWS_PER_FORWARD,
    **predict_args: Any,
) -> Any:
    """:func:`predict_sliced` on an open :class:`Picture`; the ``Results`` also carries ``windows`` (N, 4)."""
    check_slice(picture.height, picture.width, size, overlap, compat.model_stride(model))
    args = {k: v for k, v in predict_args.items() if k not in _NOT_FOR_WINDOWS}
    args.setdefault("verbose", False)
    windows = slice_windows(picture.height, picture.width, size, overlap)
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
    start = time.perf_counter()

    def add(results: list, offsets: np.ndarray, groups: list[int]) -> None:
        for result, offset, group in zip(results, offsets, groups, strict=True):
            boxes = result.boxes
            xyxy = to_picture(boxes.xyxy.cpu().numpy(), offset)
            parts.append((xyxy, boxes.conf.cpu().numpy(), boxes.cls.cpu().numpy().astype(np.int64),
                          np.full(len(xyxy), group)))  # fmt: skip

    for first in range(0, len(windows), max(int(batch), 1)):
        chunk = windows[first : first + max(int(batch), 1)]
        crops = [picture.read(w) for w in chunk]
        add(compat.predict_in_python(model, crops, **args), chunk, list(range(first, first + len(chunk))))
    whole = picture.whole()
    if full:
        add(compat.predict_in_python(model, np.ascontiguousarray(whole), **args), np.zeros((1, 4)), [WHOLE_PICTURE])
    inference = time.perf_counter() - start
    boxes, scores, classes, groups = (
        (np.concatenate(column) for column in zip(*parts, strict=True))
        if parts
        else (np.zeros((0, 4)), np.zeros(0), np.zeros(0, np.int64), np.zeros(0, np.int64))
    )
    agnostic = bool(args.get("agnostic_nms"))
    boxes, scores, classes = merge_detections(boxes, scores, classes, groups, class_agnostic=agnostic)
    merged = time.perf_counter() - start - inference
    data = np.concatenate([boxes, scores[:, None], classes[:, None].astype(np.float32)], axis=1)
    result = compat.detection_results(whole, picture.path, dict(model.names), data)
    result.speed = {"preprocess": 0.0, "inference": inference * 1000, "postprocess": merged * 1000}
    result.windows = windows
    return result
