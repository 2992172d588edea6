"""``python -m lcnet_yolo.benchmark.sliced --model best.pt``: sliced prediction against whole-picture letterbox.

Pictures: neon-trees' two held-out Yellowstone strips at native size (2299x494 and 1249x207 px, the windows the
dataset builder held out, with every annotated crown of the source clipped to the strip by the builder's own rule)
and its two whole validation pictures (OSBS_029 and SOAP_061, 400x400). Each picture is predicted whole (letterbox
into ``imgsz``, as ``predict`` does) and in ``slice`` windows at the same ``imgsz`` (:mod:`lcnet_yolo.slicing`);
mAP50 and mAP50-95 come from Ultralytics' own matching and ``ap_per_class``, at ``val``'s conf 0.001 (IoU 0.7)
and again with only the boxes above conf 0.25 (predict's default: boxes are merged at the threshold they are
predicted at); time per megapixel at ``--threads`` threads and conf 0.25 (median of ``--repeats``). A slice larger
than a picture in both directions is skipped for it (it would be the whole-picture prediction).
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

VAL_CONF, VAL_IOU, TIMING_CONF = 0.001, 0.7, 0.25


def benchmark_pictures() -> list[dict[str, Any]]:
    """The held-out strips and the whole validation pictures: ``name``, ``group``, BGR ``pixels``, ``boxes``."""
    from PIL import Image

    from lcnet_yolo.data import resolve_data
    from lcnet_yolo.data.deepforest_wheel import fetch_deepforest_wheel, open_wheel, read_wheel_member
    from lcnet_yolo.data.neon_trees import MIN_BOX_SIDE, MIN_VISIBLE_FRACTION, parse_voc, read_manifest
    from lcnet_yolo.data.tiling import Window, clip_boxes_to_window

    manifest = read_manifest(Path(resolve_data("neon-trees")).parent)
    wheel = fetch_deepforest_wheel()
    pictures = []
    with open_wheel(wheel) as archive:
        for name, source in manifest["sources"].items():
            stem = Path(source["file"]).stem
            with Image.open(io.BytesIO(read_wheel_member(archive, source["file"], wheel))) as image:
                rgb = np.asarray(image.convert("RGB"))
            boxes = parse_voc(read_wheel_member(archive, f"{stem}.xml", wheel), rgb.shape[1::-1], stem).boxes
            window = Window(*manifest["holdout"].get(name, [0, 0, rgb.shape[1], rgb.shape[0]]))
            kept, _ = clip_boxes_to_window(boxes, window, MIN_VISIBLE_FRACTION, MIN_BOX_SIDE)
            pixels = rgb[window.y0 : window.y1, window.x0 : window.x1, ::-1]
            group = "held-out strips" if name in manifest["holdout"] else "whole val pictures"
            pictures.append({"name": name, "group": group, "pixels": np.ascontiguousarray(pixels), "boxes": kept})
    return pictures


def predict(model: Any, pixels: np.ndarray, method: str, imgsz: int, overlap: float, conf: float) -> np.ndarray:
    """``(N, 6)`` boxes ``x1 y1 x2 y2 conf cls`` of one picture by ``whole``, ``slice=S`` or ``slice=S+full``."""
    from lcnet_yolo.plugin import compat
    from lcnet_yolo.slicing import predict_sliced

    args = {"imgsz": imgsz, "conf": conf, "iou": VAL_IOU, "verbose": False}
    if method == "whole":
        result = compat.predict_in_python(model, pixels, **args)[0]
    else:
        size, full = int(method.split("=")[1].split("+")[0]), method.endswith("+full")
        result = predict_sliced(model, pixels, slice=size, overlap=overlap, full=full, **args)
    return result.boxes.data.cpu().numpy()


def fits(method: str, pixels: np.ndarray) -> bool:
    """A sliced method applies when its slice is not larger than the picture in both directions."""
    return method == "whole" or int(method.split("=")[1].split("+")[0]) <= max(pixels.shape[:2])


def map_scores(predictions: list[np.ndarray], targets: list[np.ndarray]) -> dict[str, float]:
    """mAP50 and mAP50-95 over pictures, matched and scored by Ultralytics' validator code."""
    import torch

    from lcnet_yolo.plugin import compat

    tp, conf, pred_cls, target_cls = [], [], [], []
    for found, truth in zip(predictions, targets, strict=True):
        found = found[np.argsort(-found[:, 4], kind="stable")]
        iou = compat.box_iou(torch.as_tensor(truth, dtype=torch.float32), torch.as_tensor(found[:, :4]))
        correct = compat.match_detections(torch.as_tensor(found[:, 5]), torch.zeros(len(truth)), iou)
        tp.append(correct.numpy())
        conf.append(found[:, 4])
        pred_cls.append(found[:, 5])
        target_cls.append(np.zeros(len(truth)))
    ap = compat.ap_per_class(*(np.concatenate(a) for a in (tp, conf, pred_cls, target_cls)))[5]
    return {"map50": float(ap[:, 0].mean()), "map50_95": float(ap.mean())}


def run(model_path: str, imgsz: int | None, slices: list[int], overlap: float, threads: int, repeats: int) -> dict:
    """Accuracy and time per megapixel of each method on each group of pictures."""
    import torch
    from ultralytics import YOLO

    torch.set_num_threads(threads)
    model = YOLO(model_path)
    imgsz = imgsz or int(model.overrides.get("imgsz", 640))
    methods = ["whole", *(f"slice={s}" for s in slices), *(f"slice={s}+full" for s in slices)]
    pictures = benchmark_pictures()
    rows = []
    for group in dict.fromkeys(p["group"] for p in pictures):
        members = [p for p in pictures if p["group"] == group]
        for method in methods:
            if not all(fits(method, p["pixels"]) for p in members):
                continue
            found = [predict(model, p["pixels"], method, imgsz, overlap, VAL_CONF) for p in members]
            kept = [predict(model, p["pixels"], method, imgsz, overlap, TIMING_CONF) for p in members]
            seconds = []
            for _ in range(repeats):
                start = time.perf_counter()
                for p in members:
                    predict(model, p["pixels"], method, imgsz, overlap, TIMING_CONF)
                seconds.append(time.perf_counter() - start)
            megapixels = sum(p["pixels"].shape[0] * p["pixels"].shape[1] for p in members) / 1e6
            targets = [p["boxes"] for p in members]
            rows.append({
                "group": group, "pictures": [p["name"] for p in members], "method": method,
                "targets": int(sum(len(t) for t in targets)), **map_scores(found, targets),
                **{f"{k}_conf{TIMING_CONF}": v for k, v in map_scores(kept, targets).items()},
                "seconds_per_megapixel": statistics.median(seconds) / megapixels, "megapixels": megapixels,
            })  # fmt: skip
            print(table_row(rows[-1]), flush=True)
    return {"model": model_path, "imgsz": imgsz, "overlap": overlap, "threads": threads, "repeats": repeats,
            "rows": rows}  # fmt: skip


def table_row(row: dict) -> str:
    return (
        f"| {row['group']} | {row['method']} | {row['targets']} | {row['map50']:.3f} | {row['map50_95']:.3f} | "
        f"{row[f'map50_conf{TIMING_CONF}']:.3f} | {row[f'map50_95_conf{TIMING_CONF}']:.3f} | "
        f"{row['seconds_per_megapixel']:.2f} |"
    )


TABLE_HEADER = (
    f"| pictures | prediction | crowns | mAP50 | mAP50-95 | mAP50 (conf {TIMING_CONF}) | mAP50-95 (conf {TIMING_CONF}) "
    "| s / megapixel |\n|---|---|---:|---:|---:|---:|---:|---:|"
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lcnet_yolo.benchmark.sliced", description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="trained detector (.pt)")
    parser.add_argument("--imgsz", type=int, default=None, help="model input (default: the model's training size)")
    parser.add_argument("--slices", default="256,416,640", help="slice sizes, comma-separated (default 256,416,640)")
    parser.add_argument("--overlap", type=float, default=0.2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", help="write the figures to this JSON file")
    opts = parser.parse_args(argv)
    print(TABLE_HEADER, flush=True)
    slices = [int(s) for s in opts.slices.split(",") if s]
    report = run(opts.model, opts.imgsz, slices, opts.overlap, opts.threads, opts.repeats)
    if opts.json:
        Path(opts.json).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
