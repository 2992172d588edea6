"""Cutting a large image into tiles and its boxes into per-tile YOLO labels: pure geometry, no files.

Two ways to cover a region: :func:`grid_windows` (overlapping tiles, so that any box smaller than the overlap lies
whole in at least one tile; for training) and :func:`partition_windows` (disjoint tiles; for validation, so that
no pixel is counted twice). :func:`clip_boxes_to_window` moves boxes into a tile and drops the slivers left at its
border; :func:`yolo_label_lines` writes them as YOLO label rows.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

__all__ = [
    "MIN_BOX_SIDE",
    "MIN_VISIBLE_FRACTION",
    "Window",
    "clip_boxes_to_window",
    "grid_windows",
    "overlapping_starts",
    "partition_edges",
    "partition_windows",
    "yolo_label_lines",
]

MIN_VISIBLE_FRACTION = 0.4  # a clipped box keeps at least this share of its area, else it is a sliver
MIN_BOX_SIDE = 4.0  # and both its sides are at least this many pixels


@dataclass(frozen=True)
class Window:
    """A pixel rectangle ``[x0, x1) x [y0, y1)`` of a source image."""

    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        return self.y1 - self.y0

    def intersects(self, other: Window) -> bool:
        """True if the two rectangles share any pixel."""
        return self.x0 < other.x1 and other.x0 < self.x1 and self.y0 < other.y1 and other.y0 < self.y1

    def contains(self, other: Window) -> bool:
        """True if ``other`` lies wholly inside this rectangle."""
        return self.x0 <= other.x0 and self.y0 <= other.y0 and other.x1 <= self.x1 and other.y1 <= self.y1


def overlapping_starts(length: int, tile: int, min_overlap: int) -> list[int]:
    """Start offsets of the fewest ``tile``-long windows that cover ``[0, length)`` with ``min_overlap`` or more.

    Windows are spread evenly, the first at 0 and the last ending at ``length``; a ``length`` up to ``tile`` gets
    one window (which is then shorter than ``tile``).
    """
    if not 0 <= min_overlap < tile:
        raise ValueError(f"min_overlap must be in [0, {tile}), got {min_overlap}")
    if length <= tile:
        return [0]
    count = math.ceil((length - min_overlap) / (tile - min_overlap))
    return [round(i * (length - tile) / (count - 1)) for i in range(count)]


def partition_edges(length: int, tile: int) -> list[tuple[int, int]]:
    """Split ``[0, length)`` into the fewest near-equal, non-overlapping pieces no longer than ``tile``."""
    count = max(1, math.ceil(length / tile))
    edges = [round(i * length / count) for i in range(count + 1)]
    return list(itertools.pairwise(edges))


def grid_windows(region: Window, tile: int, min_overlap: int) -> list[Window]:
    """Overlapping training tiles covering ``region`` (see ``overlapping_starts``)."""
    xs = overlapping_starts(region.width, tile, min_overlap)
    ys = overlapping_starts(region.height, tile, min_overlap)
    return [
        Window(
            region.x0 + x,
            region.y0 + y,
            region.x0 + x + min(tile, region.width),
            region.y0 + y + min(tile, region.height),
        )
        for y in ys
        for x in xs
    ]


def partition_windows(region: Window, tile: int) -> list[Window]:
    """Non-overlapping tiles covering ``region`` (see ``partition_edges``)."""
    return [
        Window(region.x0 + x0, region.y0 + y0, region.x0 + x1, region.y0 + y1)
        for y0, y1 in partition_edges(region.height, tile)
        for x0, x1 in partition_edges(region.width, tile)
    ]


def clip_boxes_to_window(
    boxes: np.ndarray,
    window: Window,
    min_visible_fraction: float = MIN_VISIBLE_FRACTION,
    min_side: float = MIN_BOX_SIDE,
) -> tuple[np.ndarray, np.ndarray]:
    """Clip ``(N, 4)`` xyxy source-pixel boxes to ``window``: return the kept boxes in window coordinates and the mask.

    A box is kept if its clipped part has at least ``min_visible_fraction`` of its area and both sides of at least
    ``min_side`` pixels; everything else (boxes outside the window and slivers at its border) is dropped.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    clipped = np.empty_like(boxes)
    clipped[:, [0, 2]] = boxes[:, [0, 2]].clip(window.x0, window.x1) - window.x0
    clipped[:, [1, 3]] = boxes[:, [1, 3]].clip(window.y0, window.y1) - window.y0
    width, height = clipped[:, 2] - clipped[:, 0], clipped[:, 3] - clipped[:, 1]
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    keep = (width >= min_side) & (height >= min_side) & (width * height >= min_visible_fraction * area)
    return clipped[keep], keep


def yolo_label_lines(boxes: np.ndarray, width: int, height: int, class_id: int = 0) -> list[str]:
    """Format xyxy pixel boxes of a ``width`` x ``height`` image as YOLO lines ``class cx cy w h`` (normalised)."""
    lines = []
    for x0, y0, x1, y1 in np.asarray(boxes, dtype=np.float64).reshape(-1, 4):
        cx, cy, w, h = (x0 + x1) / 2 / width, (y0 + y1) / 2 / height, (x1 - x0) / width, (y1 - y0) / height
        lines.append(f"{class_id} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}")
    return lines
