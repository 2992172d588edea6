"""``lcnet-yolo-infer MODEL SOURCE``: detections on an image, a folder of images and videos, or a video."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from lcnet_yolo_runtime import geo, slicing
from lcnet_yolo_runtime.detector import Detector
from lcnet_yolo_runtime.errors import InputError
from lcnet_yolo_runtime.images import IMAGE_SUFFIXES, VIDEO_SUFFIXES, read_image, read_video
from lcnet_yolo_runtime.postprocess import Detections
from lcnet_yolo_runtime.progress import Progress


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="lcnet-yolo-infer",
        description="Detect objects with an exported model (.onnx, or an OpenVINO folder with the [openvino] "
        "extra) without torch or Ultralytics. Class names, image size and stride come from the model's metadata.",
    )
    p.add_argument("model", help="exported model: .onnx file, *_openvino_model/ folder or .xml")
    p.add_argument("source", help="image, folder of images and videos, or video file")
    p.add_argument("--conf", type=float, default=0.25, help="confidence threshold (default 0.25)")
    p.add_argument("--iou", type=float, default=0.7, help="NMS IoU threshold (default 0.7)")
    p.add_argument("--max-det", type=int, default=300, help="most boxes per image (default 300)")
    p.add_argument("--save", action="store_true", help="save annotated pictures (and videos) to --output")
    p.add_argument("--json", action="store_true", help="write the detections to OUTPUT/results.json")
    p.add_argument("--output", default="runs/infer", help="output folder (default runs/infer)")
    p.add_argument("--names", help="class names a,b,c for a model without metadata (overrides the metadata)")
    p.add_argument("--imgsz", help="input size H or H,W (dynamic exports only; fixed exports use their own)")
    p.add_argument("--threads", type=int, default=None, help="inference threads (default: the runtime's choice)")
    p.add_argument("--slice", type=int, help="predict pictures in overlapping windows of SLICE px (large pictures)")
    p.add_argument("--overlap", type=float, default=0.2, help="overlap of the --slice windows, in [0, 1) (0.2)")
    p.add_argument("--slice-full", action="store_true", help="with --slice: add one whole-picture pass")
    return p


def collect_sources(source: Path) -> list[Path]:
    """The files to process: the file itself, or a folder's images and videos in name order."""
    if not source.exists():
        raise InputError(f"source {source} does not exist")
    if source.is_file():
        return [source]
    if not source.is_dir():  # checked before anything reads it: a pipe or a device never ends
        raise InputError(f"source {source} is not a regular file or folder (a device or a pipe?)")
    files = sorted(p for p in source.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES)
    if not files:
        raise InputError(f"folder {source} holds no images or videos ({', '.join(sorted(IMAGE_SUFFIXES))}, ...)")
    return files


def summary(detections: Detections) -> str:
    counts: dict[str, int] = {}
    for label in detections.labels():
        counts[label] = counts.get(label, 0) + 1
    return ", ".join(f"{n} {label}" for label, n in sorted(counts.items())) or "no detections"


def run(opts: argparse.Namespace) -> int:
    """Process every source; returns the exit status. Unreadable files in a folder are reported and skipped."""
    detector = Detector(
        opts.model, conf=opts.conf, iou=opts.iou, max_det=opts.max_det, names=opts.names, imgsz=opts.imgsz,
        threads=opts.threads,
    )  # fmt: skip
    sources = collect_sources(Path(opts.source))
    if opts.slice is not None:
        check_sliced_sources(sources, opts, detector.info.stride)
    single = len(sources) == 1
    output = Path(opts.output)
    if opts.save or opts.json:
        output.mkdir(parents=True, exist_ok=True)
    records, skipped, images, frames, boxes = [], [], 0, 0, 0
    start = time.perf_counter()
    progress = Progress(len(sources), "images")
    for path in sources:
        try:
            if path.suffix.lower() in VIDEO_SUFFIXES:
                video_records = process_video(detector, path, output if opts.save else None)
                records += video_records
                frames += len(video_records)
                boxes += sum(len(r["detections"]) for r in video_records)
            else:
                if opts.slice is not None:
                    pixels, detections = predict_sliced(detector, path, opts, output)
                else:
                    pixels = read_image(path)
                    detections = detector.predict(pixels)
                if opts.save and pixels is not None:
                    save_picture(pixels, detections, output / f"{path.stem}.jpg")
                records.append({"source": str(path), "shape": list(picture_shape(path, pixels)),
                                "detections": detections.to_list()})  # fmt: skip
                images += 1
                boxes += len(detections)
                progress.message(f"{path}: {summary(detections)}")
        except InputError as error:
            if single:
                raise
            skipped.append(path)
            print(f"warning: skipped {path}: {error}", file=sys.stderr)
        progress.update()
    progress.close()
    if not images and not records:
        raise InputError(f"none of the {len(sources)} files in {opts.source} could be read")
    if opts.json:
        (output / "results.json").write_text(json.dumps(records, indent=1))
    elapsed = time.perf_counter() - start
    done = f"{images} image{'s' * (images != 1)}" + (f", {frames} video frames" if frames else "")
    saved = f"; results in {output}" if opts.save or opts.json else ""
    skip = f"; skipped {len(skipped)} unreadable" if skipped else ""
    print(f"{done}: {boxes} boxes in {elapsed:.2f}s{skip}{saved}")
    return 0


def save_picture(pixels: np.ndarray, detections: Detections, target: Path) -> None:
    """The annotated picture, written under a temporary name and renamed into place."""
    from lcnet_yolo_runtime.draw import annotate

    partial = target.with_name(f".{target.stem}.{os.getpid()}.partial{target.suffix}")
    try:
        annotate(pixels, detections).save(partial, quality=92)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


MAX_DRAWN_PIXELS = 1 << 28  # a larger raster is predicted window by window but not drawn


def picture_size(path: Path) -> tuple[int, int]:
    """``(height, width)`` of a picture from its header."""
    if geo.is_raster(path):
        with geo.Raster(path) as raster:
            return raster.height, raster.width
    from PIL import Image

    try:
        with Image.open(path) as image:
            return image.height, image.width
    except Exception as error:
        raise InputError(f"cannot read image {path} ({error})") from None


def picture_shape(path: Path, pixels: np.ndarray | None) -> tuple[int, int]:
    return pixels.shape[:2] if pixels is not None else picture_size(path)


def check_sliced_sources(sources: list[Path], opts: argparse.Namespace, stride: int) -> None:
    """With ``--slice``: no videos, and a usable slice for every picture, checked before anything runs."""
    for path in sources:
        if path.suffix.lower() in VIDEO_SUFFIXES:
            raise InputError(f"--slice works on pictures, not videos: {path}")
        slicing.check_slice(*picture_size(path), opts.slice, opts.overlap, stride)


def predict_sliced(
    detector: Detector, path: Path, opts: argparse.Namespace, output: Path
) -> tuple[np.ndarray | None, Detections]:
    """Sliced detections of one picture; a raster's boxes also go to OUTPUT/STEM.geojson and .gpkg (with --save
    or --json). Returns the pixels to draw (None for a raster too large to draw)."""
    detections = detector.predict_sliced(path, opts.slice, opts.overlap, opts.slice_full)
    if not geo.is_raster(path):
        return read_image(path), detections
    with geo.Raster(path) as raster:
        if opts.save or opts.json:
            geo.write_vectors(output / path.stem, detections.boxes, detections.scores, detections.classes,
                              detections.names, raster.crs, raster.transform)  # fmt: skip
        if not opts.save or raster.height * raster.width > MAX_DRAWN_PIXELS:
            return None, detections
        return raster.read((0, 0, raster.width, raster.height)), detections


def process_video(detector: Detector, path: Path, output: Path | None) -> list[dict]:
    """Detections of every frame of a video; with ``output`` the annotated video goes to OUTPUT/STEM.mp4."""
    from lcnet_yolo_runtime.preprocess import cv2

    frames, count, fps = read_video(path)
    writer, records = None, []
    progress = Progress(count, path.name)
    for index, frame in enumerate(frames):
        detections = detector.predict(frame)
        records.append({"source": str(path), "frame": index, "shape": list(frame.shape[:2]),
                        "detections": detections.to_list()})  # fmt: skip
        if output is not None:
            from lcnet_yolo_runtime.draw import annotate

            if writer is None:
                fourcc = cv2.VideoWriter_fourcc(*"mp4v")
                writer = cv2.VideoWriter(str(output / f"{path.stem}.mp4"), fourcc, fps, frame.shape[1::-1])
            writer.write(np.asarray(annotate(frame, detections))[..., ::-1].copy())
        progress.update()
    progress.close()
    if writer is not None:
        writer.release()
    print(f"{path}: {len(records)} frames, {sum(len(r['detections']) for r in records)} boxes")
    return records


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``lcnet-yolo-infer``; bad input gives one line on stderr and exit status 2."""
    opts = parser().parse_args(argv)
    try:
        with warnings.catch_warnings():  # warnings (a raster without a CRS) in one line each
            warnings.showwarning = lambda message, *args, **kwargs: print(f"warning: {message}", file=sys.stderr)
            return run(opts)
    except (InputError, slicing.SliceError, geo.GeoError) as error:
        print(f"lcnet-yolo-infer: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
