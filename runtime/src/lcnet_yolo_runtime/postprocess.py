"""From the network's output to boxes in the original image: decode, confidence filter, NMS, undo the letterbox.

The exported Detect head already turns its distributions into boxes: the output is ``(1, 4 + nc, N)`` with
``cx, cy, w, h`` in input pixels followed by one sigmoid score per class. End-to-end exports (NMS-free heads, or
``nms=True`` exports) give ``(1, N, 6)`` rows ``x1, y1, x2, y2, score, class`` that only need the threshold. The
thresholds follow Ultralytics' predictor: best class per box, ``score > conf``, class-aware greedy NMS that drops
boxes with ``IoU > iou``, at most 30000 candidates in and ``max_det`` boxes out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lcnet_yolo_runtime.preprocess import Letterbox

MAX_CANDIDATES = 30000
CLASS_OFFSET = 7680.0  # pixels between classes so that one NMS pass never compares boxes of two classes


@dataclass
class Detections:
    """Boxes ``(N, 4)`` as ``x1, y1, x2, y2`` pixels of the original image, ``scores (N,)``, ``classes (N,)``."""

    boxes: np.ndarray
    scores: np.ndarray
    classes: np.ndarray
    names: dict[int, str]

    def __len__(self) -> int:
        return len(self.scores)

    def labels(self) -> list[str]:
        """Class name of each box."""
        return [self.names.get(int(c), str(int(c))) for c in self.classes]

    def to_list(self) -> list[dict]:
        """JSON-ready rows: ``box`` (x1, y1, x2, y2), ``score``, ``class`` and ``name``."""
        return [
            {"box": [round(float(v), 2) for v in box], "score": round(float(s), 5), "class": int(c), "name": name}
            for box, s, c, name in zip(self.boxes, self.scores, self.classes, self.labels(), strict=True)
        ]


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
    """Indices kept by greedy NMS, highest score first; a box goes when its IoU with a kept one exceeds ``iou``."""
    order = np.argsort(-scores, kind="stable")
    x1, y1, x2, y2 = boxes.T
    areas = (x2 - x1) * (y2 - y1)
    keep = []
    while order.size:
        best, rest = order[0], order[1:]
        keep.append(best)
        width = np.clip(np.minimum(x2[best], x2[rest]) - np.maximum(x1[best], x1[rest]), 0, None)
        height = np.clip(np.minimum(y2[best], y2[rest]) - np.maximum(y1[best], y1[rest]), 0, None)
        overlap = width * height
        order = rest[overlap / (areas[best] + areas[rest] - overlap) <= iou]
    return np.asarray(keep, dtype=np.int64)


def decode(
    output: np.ndarray, conf: float, iou: float, end2end: bool, max_det: int = 300
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boxes (xyxy, input pixels), scores and classes of one image from the raw output of a batch of one."""
    if end2end or output.shape[-1] == 6:
        rows = output[0][output[0][:, 4] > conf][:max_det].astype(np.float32)
        return rows[:, :4], rows[:, 4], rows[:, 5].astype(np.int64)
    predictions = output[0]  # (4 + nc, N)
    class_scores = predictions[4:]
    best = class_scores.max(axis=0)
    candidates = np.flatnonzero(best > conf)
    if candidates.size > MAX_CANDIDATES:
        candidates = candidates[np.argsort(-best[candidates], kind="stable")[:MAX_CANDIDATES]]
    scores = best[candidates].astype(np.float32)
    classes = class_scores[:, candidates].argmax(axis=0)
    cx, cy, w, h = predictions[:4, candidates].astype(np.float32)
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    keep = nms(boxes + (classes[:, None] * CLASS_OFFSET).astype(np.float32), scores, iou)[:max_det]
    return boxes[keep], scores[keep], classes[keep]


def unletterbox(boxes: np.ndarray, geometry: Letterbox, image_shape: tuple[int, int]) -> np.ndarray:
    """Boxes from network-input pixels back to the original ``(h, w)`` image, clipped to it."""
    boxes = boxes.copy()
    boxes[:, [0, 2]] = ((boxes[:, [0, 2]] - geometry.pad_x) / geometry.gain_x).clip(0, image_shape[1])
    boxes[:, [1, 3]] = ((boxes[:, [1, 3]] - geometry.pad_y) / geometry.gain_y).clip(0, image_shape[0])
    return boxes
