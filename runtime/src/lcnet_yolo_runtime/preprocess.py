"""Letterbox and input tensor, matching Ultralytics' predictor (``LetterBox`` + ``BasePredictor.preprocess``).

Ultralytics resizes with OpenCV's ``INTER_LINEAR`` and pads with grey 114, the image centred. When OpenCV is
installed we call it; otherwise :func:`resize_linear` reproduces OpenCV's fixed-point bilinear arithmetic with numpy
(11-bit weights, the same rounding; exact 2x shrinks average 2x2 blocks as OpenCV does), so the two paths feed the
network the same pixels up to a rare off-by-one and the detections agree with Ultralytics' to float precision.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

PAD_VALUE = 114
_WEIGHT_BITS = 11  # OpenCV's INTER_RESIZE_COEF_BITS
_WEIGHT_ONE = 1 << _WEIGHT_BITS

try:  # optional: the [opencv] extra, used for speed and for videos
    import cv2
except ImportError:  # pragma: no cover - exercised by the fresh-venv test
    cv2 = None


@dataclass(frozen=True)
class Letterbox:
    """Where the original image sits inside the network input: scale per axis and padding in pixels."""

    gain_x: float
    gain_y: float
    pad_x: int
    pad_y: int
    input_shape: tuple[int, int]  # (height, width) fed to the network


def letterbox_geometry(
    image_shape: tuple[int, int], target: tuple[int, int], stride: int = 32, minimal: bool = False
) -> tuple[tuple[int, int], tuple[int, int, int, int]]:
    """Resized size ``(w, h)`` and padding ``(top, bottom, left, right)`` for an image of ``(h, w)`` into ``target``.

    ``minimal`` pads only up to the next multiple of ``stride`` (Ultralytics' ``auto``, used with dynamic exports).
    """
    height, width = image_shape
    ratio = min(target[0] / height, target[1] / width)
    new_w, new_h = max(round(width * ratio), 1), max(round(height * ratio), 1)
    pad_w, pad_h = target[1] - new_w, target[0] - new_h
    if minimal:
        pad_w, pad_h = pad_w % stride, pad_h % stride
    half_w, half_h = pad_w / 2, pad_h / 2
    return (new_w, new_h), (round(half_h - 0.1), round(half_h + 0.1), round(half_w - 0.1), round(half_w + 0.1))


@lru_cache(maxsize=16)
def _linear_taps(source: int, target: int, rows: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Source indices and 11-bit weights of OpenCV's bilinear resize along one axis.

    Past the edges OpenCV zeroes the weight of the missing column but, for rows, keeps both weights and reads the
    edge row twice; with its rounding the two differ by one grey level now and then, so both are reproduced.
    """
    scale = 1.0 / (target / source)  # OpenCV inverts the inverse scale, in double precision
    position = ((np.arange(target) + 0.5) * scale - 0.5).astype(np.float32)
    first = np.floor(position).astype(np.int64)
    fraction = position - first.astype(np.float32)
    if not rows:
        fraction[(first < 0) | (first >= source - 1)] = 0.0
    second = np.clip(first + 1, 0, source - 1)
    first = np.clip(first, 0, source - 1)
    weight_second = np.rint(fraction * np.float32(_WEIGHT_ONE)).astype(np.int32)
    weight_first = np.rint((np.float32(1.0) - fraction) * np.float32(_WEIGHT_ONE)).astype(np.int32)
    return _frozen(first, second, weight_first, weight_second)


def _frozen(*arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    """The arrays made read-only: they are cached and shared between calls."""
    for array in arrays:
        array.setflags(write=False)
    return arrays


def resize_linear(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a ``uint8`` HxWxC image to ``size = (w, h)`` like ``cv2.resize(..., interpolation=INTER_LINEAR)``."""
    new_w, new_h = size
    height, width = image.shape[:2]
    if (new_w, new_h) == (width, height):
        return image.copy()
    if width == 2 * new_w and height == 2 * new_h:  # OpenCV switches exact 2x shrinks to INTER_AREA
        blocks = image.astype(np.uint16)
        total = blocks[0::2, 0::2] + blocks[0::2, 1::2] + blocks[1::2, 0::2] + blocks[1::2, 1::2]
        return ((total + 2) >> 2).astype(np.uint8)
    channels = image.shape[2]
    columns0, columns1, weights0, weights1 = _column_taps(width, new_w, channels)
    y0, y1, ay0, ay1 = _linear_taps(height, new_h, rows=True)
    rows = np.unique(np.concatenate([y0, y1]))  # only the source rows the output reads
    # Work on (rows, width * channels) so that every gather is a plain take along one axis.
    src = np.take(image.reshape(height, width * channels), rows, axis=0)
    part = np.take(src, columns0, axis=1).astype(np.int32)
    part *= weights0
    second = np.take(src, columns1, axis=1).astype(np.int32)
    second *= weights1
    part += second
    part >>= 4  # OpenCV's vectorised vertical pass works on (row >> 4) in 16 bits ...
    horizontal = np.empty((height, new_w * channels), np.int32)
    horizontal[rows] = part
    top = np.take(horizontal, y0, axis=0)
    top *= ay0[:, None]
    top >>= 16  # ... keeps the high half of each product ...
    bottom = np.take(horizontal, y1, axis=0)
    bottom *= ay1[:, None]
    bottom >>= 16
    top += bottom
    top += 2
    top >>= 2  # ... and rounds the sum: at most (1020 + 2) >> 2 = 255, so no clipping is needed
    return top.astype(np.uint8).reshape(new_h, new_w, channels)


@lru_cache(maxsize=16)
def _column_taps(source: int, target: int, channels: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Column taps spread over the interleaved channels of a (rows, width * channels) array."""
    x0, x1, a0, a1 = _linear_taps(source, target, rows=False)
    offsets = np.arange(channels)
    return _frozen(
        (x0[:, None] * channels + offsets).ravel(),
        (x1[:, None] * channels + offsets).ravel(),
        np.repeat(a0, channels),
        np.repeat(a1, channels),
    )


def letterbox(
    image: np.ndarray, target: tuple[int, int], stride: int = 32, minimal: bool = False, use_opencv: bool = True
) -> tuple[np.ndarray, Letterbox]:
    """Resize keeping the aspect ratio and pad with grey to ``target = (h, w)`` (or its stride multiple)."""
    original = image.shape[:2]
    (new_w, new_h), (top, bottom, left, right) = letterbox_geometry(original, target, stride, minimal)
    if image.shape[1::-1] != (new_w, new_h):
        if use_opencv and cv2 is not None:
            image = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
        else:
            image = resize_linear(image, (new_w, new_h))
    canvas = np.full((new_h + top + bottom, new_w + left + right, image.shape[2]), PAD_VALUE, np.uint8)
    canvas[top : top + new_h, left : left + new_w] = image
    return canvas, Letterbox(new_w / original[1], new_h / original[0], left, top, canvas.shape[:2])


def to_tensor(image: np.ndarray) -> np.ndarray:
    """RGB ``uint8`` HxWx3 -> float32 1x3xHxW in 0..1, as Ultralytics feeds an exported model."""
    return np.ascontiguousarray(image.transpose(2, 0, 1)[None], dtype=np.float32) / np.float32(255.0)
