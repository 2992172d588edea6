"""Side by side: the torch-free runtime against Ultralytics' predictor on the same ONNX file.

Run it from the full install (it imports Ultralytics to be compared with, so it lives outside the torch-free
``runtime/`` folder):

    .venv/bin/python benchmarks/runtime_vs_ultralytics.py --model runs/demo/train/weights/best.pt

It exports the model to a fixed 640 px ONNX (or takes an ``.onnx`` as it is), then on one image, with every engine
pinned to the same number of threads (ONNX Runtime intra-op and torch), times end to end per image (read the file,
letterbox, inference, decode + NMS), in interleaved rounds (order rotated, a pause before each call so that no
engine inherits another's spinning worker threads), and prints medians and ratios:

- Ultralytics: ``YOLO(onnx).predict(image)``;
- runtime: ``Detector(onnx).predict(image)`` with OpenCV decoding/resizing (the ``[video]`` extra installed);
- runtime, lean: the same with the numpy letterbox and Pillow decoding (the plain ``pip install ./runtime``);
- ONNX Runtime alone on the prepared tensor (the floor both share).

It also checks the detections agree (count, IoU, score) and measures install sizes: a fresh venv with
``pip install ./runtime`` (and with ``[video]``) next to the full install this script runs in (``du -sk``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

RUNTIME_DIR = Path(__file__).resolve().parents[1] / "runtime"
sys.path.insert(0, str(RUNTIME_DIR / "src"))


def du_megabytes(path: Path) -> float:
    """Disk usage of a folder as ``du -sk`` reports it, in MB."""
    return int(subprocess.run(["du", "-sk", str(path)], capture_output=True, text=True).stdout.split()[0]) / 1024


def fresh_venv(folder: Path, extra: str = "") -> float:
    """Create a venv, ``pip install ./runtime[extra]`` into it (packages from PyPI) and return its size in MB."""
    subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True)
    target = f"{RUNTIME_DIR}[{extra}]" if extra else str(RUNTIME_DIR)
    subprocess.run(
        [str(folder / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check", target],
        check=True,
    )
    return du_megabytes(folder)


def pin_onnxruntime_threads(threads: int) -> None:
    """Every ONNX Runtime session made from now on (Ultralytics' too) uses ``threads`` intra-op threads."""
    import onnxruntime

    base = onnxruntime.InferenceSession

    class Pinned(base):
        def __init__(self, path, sess_options=None, *args, **kwargs):
            sess_options = sess_options or onnxruntime.SessionOptions()
            sess_options.intra_op_num_threads, sess_options.inter_op_num_threads = threads, 1
            super().__init__(path, sess_options, *args, **kwargs)

    onnxruntime.InferenceSession = Pinned


def export_onnx(model: Path, imgsz: int, folder: Path) -> Path:
    if model.suffix == ".onnx":
        return model
    from ultralytics import YOLO

    import lcnet_yolo  # noqa: F401  (registers our layers)

    copy = folder / model.name
    shutil.copy(model, copy)
    return Path(YOLO(copy).export(format="onnx", imgsz=imgsz, device="cpu"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="trained .pt (exported at --imgsz) or an .onnx")
    parser.add_argument("--image", help="picture to time (default: the demo image SOAP_031.png)")
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--conf", type=float, default=0.25)
    parser.add_argument("--pause", type=float, default=0.3, help="seconds of idle before each timed call")
    parser.add_argument("--no-venv", action="store_true", help="skip the fresh-venv install sizes")
    opts = parser.parse_args()

    import torch

    torch.set_num_threads(opts.threads)
    pin_onnxruntime_threads(opts.threads)
    from lcnet_yolo_runtime import Detector, images, preprocess
    from ultralytics import YOLO

    work = Path(tempfile.mkdtemp(prefix="benchmark-runtime-"))
    onnx = export_onnx(Path(opts.model), opts.imgsz, work)
    if opts.image:
        image = Path(opts.image)
    else:
        from lcnet_yolo.data import deepforest_image

        image = deepforest_image("SOAP_031.png")

    ultralytics_model = YOLO(str(onnx), task="detect")
    detector = Detector(onnx, conf=opts.conf, threads=opts.threads)
    opencv = preprocess.cv2

    def ultralytics_run():
        return ultralytics_model.predict(str(image), conf=opts.conf, device="cpu", verbose=False)[0]

    def runtime_run():
        return detector.predict(image)

    def lean_run():
        preprocess.cv2 = images.cv2 = None
        try:
            return detector.predict(image)
        finally:
            preprocess.cv2 = images.cv2 = opencv

    tensor = preprocess.to_tensor(preprocess.letterbox(images.read_image(image), detector.info.imgsz)[0])

    def inference_only():
        return detector.backend(tensor)

    engines = {
        "Ultralytics predictor": ultralytics_run,
        "runtime (OpenCV)": runtime_run,
        "runtime, lean (numpy letterbox)": lean_run,
        "ONNX Runtime inference only": inference_only,
    }
    for run in engines.values():
        for _ in range(3):
            run()
    times = {name: [] for name in engines}
    names = list(engines)
    for index in range(opts.rounds):
        # Rotate the order and pause before each call: torch's and ONNX Runtime's worker threads keep spinning for a
        # while after their last task, and would otherwise slow down whichever engine runs next on the same cores.
        for name in names[index % len(names) :] + names[: index % len(names)]:
            time.sleep(opts.pause)
            start = time.perf_counter()
            engines[name]()
            times[name].append(time.perf_counter() - start)
    medians = {name: statistics.median(t) * 1000 for name, t in times.items()}

    reference = ultralytics_run()
    ours, lean = runtime_run(), lean_run()
    parity = {}
    for label, got in (("runtime", ours), ("lean", lean)):
        expected = reference.boxes.xyxy.numpy()
        same_count = len(got) == len(expected)
        if same_count and len(got):
            order_u, order_r = np.argsort(-reference.boxes.conf.numpy()), np.argsort(-got.scores)
            a, b = expected[order_u], got.boxes[order_r]
            inter = np.clip(np.minimum(a[:, 2:], b[:, 2:]) - np.maximum(a[:, :2], b[:, :2]), 0, None).prod(1)
            union = (a[:, 2:] - a[:, :2]).prod(1) + (b[:, 2:] - b[:, :2]).prod(1) - inter
            score_gap = float(np.abs(reference.boxes.conf.numpy()[order_u] - got.scores[order_r]).max())
            parity[label] = {"boxes": len(got), "min IoU": float((inter / union).min()), "max score gap": score_gap}
        else:
            parity[label] = {"boxes": len(got), "ultralytics boxes": len(expected)}

    full = du_megabytes(Path(sys.prefix))
    sizes = {"full install (this venv)": full}
    if not opts.no_venv:
        sizes["runtime venv: pip install ./runtime"] = fresh_venv(work / "venv-lean")
        sizes["runtime venv: pip install './runtime[video]'"] = fresh_venv(work / "venv-video", "video")

    base = medians["Ultralytics predictor"]
    print(f"\nmodel {onnx.name} ({opts.imgsz} px), image {image.name}, {opts.threads} threads, {opts.rounds} rounds")
    print(f"{'end to end per image':40s} {'median ms':>10s} {'x Ultralytics':>14s}")
    for name, value in medians.items():
        print(f"{name:40s} {value:10.1f} {value / base:14.2f}")
    print(f"\n{'install size':46s} {'MB':>7s} {'x full':>7s}")
    for name, value in sizes.items():
        print(f"{name:46s} {value:7.0f} {value / full:7.2f}")
    print("\nparity with Ultralytics on this image:", json.dumps(parity))
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
