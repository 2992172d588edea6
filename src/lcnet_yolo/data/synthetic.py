"""A tiny one-class detection dataset drawn from a seed: bright rectangles on noise, for fast tests and demos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml
from PIL import Image, ImageDraw

__all__ = ["make_synthetic_dataset"]


def make_synthetic_dataset(
    root: str | Path, n_train: int = 8, n_val: int = 4, imgsz: int = 64, seed: int = 0, boxes_per_image: int = 3
) -> Path:
    """Write a one-class dataset of bright rectangles on noise and return its ``data.yaml``.

    Every image gets ``boxes_per_image`` non-overlapping-ish filled rectangles labelled as class 0 ("box").
    Deterministic for a given ``seed``.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    for split, count in (("train", n_train), ("val", n_val)):
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            pixels = rng.integers(0, 80, (imgsz, imgsz, 3), dtype=np.uint8)
            image = Image.fromarray(pixels)
            draw = ImageDraw.Draw(image)
            lines = []
            for _ in range(boxes_per_image):
                w, h = rng.integers(imgsz // 6, imgsz // 3, 2)
                x0, y0 = rng.integers(0, imgsz - w), rng.integers(0, imgsz - h)
                colour = tuple(int(c) for c in rng.integers(150, 256, 3))
                draw.rectangle([int(x0), int(y0), int(x0 + w - 1), int(y0 + h - 1)], fill=colour)
                lines.append(f"0 {(x0 + w / 2) / imgsz:.6f} {(y0 + h / 2) / imgsz:.6f} {w / imgsz:.6f} {h / imgsz:.6f}")
            image.save(root / "images" / split / f"{split}_{i:04d}.png")
            (root / "labels" / split / f"{split}_{i:04d}.txt").write_text("\n".join(lines) + "\n")
    data_yaml = root / "data.yaml"
    data_yaml.write_text(
        yaml.safe_dump({"path": str(root.resolve()), "train": "images/train", "val": "images/val", "names": {0: "box"}})
    )
    return data_yaml
