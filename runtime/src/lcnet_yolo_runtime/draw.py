"""Annotated pictures: a coloured box per detection with its class name and score."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from lcnet_yolo_runtime.postprocess import Detections

PALETTE = [(255, 56, 56), (255, 157, 151), (255, 112, 31), (255, 178, 29), (207, 210, 49), (72, 249, 10),
           (146, 204, 23), (61, 219, 134), (26, 147, 52), (0, 212, 187), (44, 153, 168), (0, 194, 255),
           (52, 69, 147), (100, 115, 255), (0, 24, 236), (132, 56, 255), (82, 0, 133), (203, 56, 255)]  # fmt: skip


def annotate(image: np.ndarray, detections: Detections) -> Image.Image:
    """The RGB image with the detections drawn on it."""
    picture = Image.fromarray(image)
    canvas = ImageDraw.Draw(picture)
    font = ImageFont.load_default()
    width = max(1, round(sum(image.shape[:2]) / 600))
    for box, score, label, cls in zip(
        detections.boxes, detections.scores, detections.labels(), detections.classes, strict=True
    ):
        colour = PALETTE[int(cls) % len(PALETTE)]
        x1, x2 = sorted((float(box[0]), float(box[2])))  # an untrained head can give inverted boxes
        y1, y2 = sorted((float(box[1]), float(box[3])))
        canvas.rectangle((x1, y1, x2, y2), outline=colour, width=width)
        text = f"{label} {score:.2f}"
        left, top, right, bottom = canvas.textbbox((x1, y1), text, font=font)
        lift = bottom - top + 2 if y1 - (bottom - top + 2) >= 0 else 0
        canvas.rectangle((left, top - lift, right + 2, bottom - lift), fill=colour)
        canvas.text((x1 + 1, y1 - lift), text, fill=(255, 255, 255), font=font)
    return picture
