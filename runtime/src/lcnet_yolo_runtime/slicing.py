"""Sliced prediction in numpy: overlapping windows over a large picture, and the merge of their boxes.

This file exists twice, byte for byte: ``lcnet_yolo/slicing/core.py`` and ``lcnet_yolo_runtime/slicing.py`` (the
runtime is a distribution of its own and the main package does not depend on it; a test checks the copies agree).
It imports numpy only.

Windows follow the usual sliced-inference layout (as SAHI and DeepForest cut them): squares of ``size`` pixels
starting every ``size - int(overlap * size)`` pixels, the last window of each row and column moved back to end on
the picture's edge. Along an axis shorter than ``size`` a window spans the whole axis.

Merging follows SAHI's default postprocess (greedy non-maximum merging, "GREEDYNMM", matched by intersection over
the smaller box, "IOS", at 0.5, per class): boxes are visited by score; each box not yet taken keeps itself and
takes every lower-scored box of the same class whose IOS with it reaches the threshold; the taken boxes are merged
into it in score order (union of the boxes, the higher score) when the growing union still matches them, and are
dropped otherwise. A crown cut by a window edge gives a partial box that lies mostly inside the whole crown's box
seen by the neighbouring window, so its IOS is high and it merges into that box instead of being a second
detection. One deliberate difference from SAHI: two boxes of the same window never match (the model's own NMS
already decided about them), so one window equal to the picture gives exactly the whole-picture boxes.
"""

from __future__ import annotations

import numpy as np

MATCH_THRESHOLD = 0.5  # SAHI's default postprocess_match_threshold
WHOLE_PICTURE = -1  # group of the boxes of the optional whole-picture pass


class SliceError(ValueError):
    """A slice size or overlap that cannot be used on this picture or model."""


def check_slice(height: int, width: int, size: int, overlap: float, stride: int = 32) -> None:
    """Raise :class:`SliceError` for a slice smaller than the model's stride or larger than the picture (in both
    directions), or an overlap outside [0, 1)."""
    if isinstance(size, bool) or not isinstance(size, int | np.integer) or size < stride:
        raise SliceError(f"slice={size} must be a whole number of pixels, at least the model's stride {stride}")
    if isinstance(overlap, bool) or not isinstance(overlap, int | float) or not 0 <= overlap < 1:
        raise SliceError(f"overlap={overlap} must be a fraction in [0, 1)")
    if size > height and size > width:
        raise SliceError(
            f"slice={size} is larger than the picture ({width}x{height} px): predict it whole, without slice="
        )


def axis_starts(length: int, size: int, overlap: float) -> list[int]:
    """Start of each window along one axis of ``length`` pixels; the last one ends on the edge."""
    if size >= length:
        return [0]
    step = max(size - int(overlap * size), 1)
    starts = list(range(0, length - size, step))
    return [*starts, length - size]


def slice_windows(height: int, width: int, size: int, overlap: float) -> np.ndarray:
    """Windows ``(N, 4)`` as ``x0, y0, x1, y1`` pixels, row by row, covering a ``height x width`` picture."""
    rows = axis_starts(height, size, overlap)
    cols = axis_starts(width, size, overlap)
    return np.array(
        [[x, y, min(x + size, width), min(y + size, height)] for y in rows for x in cols], dtype=np.int64
    ).reshape(-1, 4)


def _ios(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    """Intersection of ``box`` with each of ``others`` over the smaller of the two areas."""
    width = np.clip(np.minimum(box[2], others[:, 2]) - np.maximum(box[0], others[:, 0]), 0, None)
    height = np.clip(np.minimum(box[3], others[:, 3]) - np.maximum(box[1], others[:, 1]), 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1])
    smaller = np.minimum(area, areas)
    return np.divide(width * height, smaller, out=np.zeros_like(smaller, dtype=np.float64), where=smaller > 0)


def merge_detections(
    boxes: np.ndarray,
    scores: np.ndarray,
    classes: np.ndarray,
    groups: np.ndarray,
    threshold: float = MATCH_THRESHOLD,
    class_agnostic: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Merge the boxes of overlapping windows (xyxy in picture pixels); ``groups`` says which window each box
    came from. Returns boxes, scores and classes of the merged detections, highest score first."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    scores, classes, groups = (np.asarray(a).reshape(-1) for a in (scores, classes, groups))
    order = np.lexsort((boxes[:, 3], boxes[:, 2], boxes[:, 1], boxes[:, 0], -scores))
    taken = np.zeros(len(scores), dtype=bool)
    out_boxes, out_scores, out_classes = [], [], []
    for index in order:
        if taken[index]:
            continue
        taken[index] = True
        candidates = order[~taken[order]]
        match = groups[candidates] != groups[index]
        if not class_agnostic:
            match &= classes[candidates] == classes[index]
        candidates = candidates[match]
        candidates = candidates[_ios(boxes[index], boxes[candidates]) >= threshold]
        taken[candidates] = True
        box, score, label = boxes[index].copy(), scores[index], classes[index]
        for other in candidates:
            if _ios(box, boxes[other][None])[0] >= threshold:
                box[:2] = np.minimum(box[:2], boxes[other, :2])
                box[2:] = np.maximum(box[2:], boxes[other, 2:])
                if not score > scores[other]:
                    label = classes[other]
                score = max(score, scores[other])
        out_boxes.append(box)
        out_scores.append(score)
        out_classes.append(label)
    return (
        np.array(out_boxes, dtype=np.float32).reshape(-1, 4),
        np.array(out_scores, dtype=np.float32),
        np.array(out_classes, dtype=np.int64),
    )


def to_picture(boxes: np.ndarray, window: np.ndarray) -> np.ndarray:
    """Boxes from a window's pixels to the whole picture's (shifted by the window's corner)."""
    offset = np.array([window[0], window[1], window[0], window[1]], dtype=np.float32)
    return np.asarray(boxes, dtype=np.float32).reshape(-1, 4) + offset
