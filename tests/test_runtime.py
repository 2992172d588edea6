"""The torch-free runtime (``runtime/``): same boxes as Ultralytics' predictor on the same ONNX, and clean errors.

The runtime lives in its own distribution; the main venv installs it editable (``make install``). These tests import
it from ``runtime/src`` when it is not installed, so they also run from a plain checkout.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

RUNTIME_DIR = Path(__file__).resolve().parent.parent / "runtime"
if importlib.util.find_spec("lcnet_yolo_runtime") is None:  # not installed: use the sources
    sys.path.insert(0, str(RUNTIME_DIR / "src"))

from lcnet_yolo_runtime import Detector, preprocess  # noqa: E402
from lcnet_yolo_runtime import images as runtime_images  # noqa: E402
from lcnet_yolo_runtime.cli import main as infer_main  # noqa: E402

IMGSZ = 128  # small exports keep the tests quick; the 400 px demo image is shrunk into it
CONF = 0.25  # Ultralytics' default
IOU = 0.7
MIN_BOXES = 5  # a parity check over fewer boxes would prove little


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of xyxy boxes (len(a), len(b))."""
    top_left = np.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(bottom_right - top_left, 0, None).prod(2)
    area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None] - inter)


def assert_same_detections(expected, got) -> None:
    """Same count; each Ultralytics box has its own runtime box of the same class, score within 1e-3, IoU >= 0.99.

    Boxes are paired by the smallest coordinate difference. An untrained head also yields boxes squeezed to (almost)
    nothing by the clipping to the image, where IoU is undefined or swings with a thousandth of a pixel; boxes under
    1 px wide or high must agree to 0.5 px in every coordinate instead.
    """
    boxes, scores, classes = expected
    assert len(got) == len(scores), f"runtime found {len(got)} boxes, Ultralytics {len(scores)}"
    distance = np.abs(boxes[:, None, :] - got.boxes[None, :, :]).max(2)
    distance[classes[:, None] != got.classes[None, :]] = np.inf
    pairs = distance.argmin(1)
    assert sorted(pairs.tolist()) == list(range(len(scores))), "two Ultralytics boxes paired with one runtime box"
    assert np.abs(got.scores[pairs] - scores).max() <= 1e-3
    proper = (boxes[:, 2] - boxes[:, 0] >= 1) & (boxes[:, 3] - boxes[:, 1] >= 1)
    assert proper.sum() >= MIN_BOXES
    assert box_iou(boxes[proper], got.boxes[pairs][proper]).diagonal().min() >= 0.99
    assert distance[np.arange(len(pairs)), pairs][~proper].max(initial=0.0) <= 0.5


def ultralytics_predict(model: Path, image: Path, conf: float = CONF) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from ultralytics import YOLO

    result = YOLO(str(model), task="detect").predict(str(image), conf=conf, iou=IOU, device="cpu", verbose=False)[0]
    return result.boxes.xyxy.numpy(), result.boxes.conf.numpy(), result.boxes.cls.numpy().astype(np.int64)


def calibrated_detector(folder: Path, image: Path) -> Path:
    """An untrained ``yolov8n-pplcnet`` whose BatchNorm statistics come from crops of ``image``, saved as a .pt.

    A fresh network's features fade to ~1e-10 by the head (every score the same), and the one-epoch shared model
    scores all boxes alike; with real activation statistics the scores and boxes vary, so the comparison covers
    sorting, NMS and the letterbox without a training run.
    """
    import torch
    from ultralytics import YOLO

    torch.manual_seed(0)
    model = YOLO("yolov8n-pplcnet.yaml")
    pixels = torch.from_numpy(np.asarray(Image.open(image).convert("RGB"))).permute(2, 0, 1).float() / 255
    crops = torch.stack([pixels[:, y : y + 128, x : x + 128] for y in (0, 136, 272) for x in (0, 136, 272)])
    for module in model.model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = 1.0  # running statistics := this batch's
    model.model.train()
    with torch.no_grad():
        model.model(crops)
    model.model.eval()
    model.model.names = {i: f"kind{i}" for i in range(80)}  # written to the export's metadata
    target = folder / "calibrated.pt"
    model.save(target)
    return target


@pytest.fixture(scope="module")
def demo_image() -> Path:
    """The demo's unlabelled NEON picture ``SOAP_031.png`` (400 x 400), from the lcnet-yolo cache."""
    from lcnet_yolo.data import deepforest_image

    return deepforest_image("SOAP_031.png")


@pytest.fixture(scope="module")
def exports(demo_image, tmp_path_factory) -> dict[str, Path]:
    """The calibrated detector exported to ONNX: a fixed 128 px input, and a dynamic input."""
    from ultralytics import YOLO

    folder = tmp_path_factory.mktemp("runtime-export")
    weights = calibrated_detector(folder, demo_image)
    paths = {}
    for name, dynamic in (("static", False), ("dynamic", True)):
        copy = folder / name / "model.pt"
        copy.parent.mkdir()
        shutil.copy(weights, copy)
        paths[name] = Path(YOLO(copy).export(format="onnx", imgsz=IMGSZ, dynamic=dynamic, device="cpu"))
    return paths


@pytest.fixture(scope="module")
def wide_image(demo_image, tmp_path_factory) -> Path:
    """A 400 x 150 strip of the demo image: letterboxed with padding above and below."""
    target = tmp_path_factory.mktemp("runtime-images") / "strip.jpg"
    Image.open(demo_image).convert("RGB").crop((0, 100, 400, 250)).save(target, quality=90)
    return target


def without_opencv(monkeypatch) -> None:
    """Make the runtime take its numpy/Pillow path, as in an install without the [video] extra."""
    monkeypatch.setattr(preprocess, "cv2", None)
    monkeypatch.setattr(runtime_images, "cv2", None)


def run_infer(capsys, *args: str) -> tuple[int, list[str], list[str]]:
    """``lcnet-yolo-infer ARGS`` in this process: exit status, stdout lines, stderr lines."""
    status = infer_main([str(a) for a in args])
    captured = capsys.readouterr()
    return status, captured.out.splitlines(), captured.err.splitlines()


@pytest.mark.parametrize("opencv", [True, False], ids=["opencv", "numpy-letterbox"])
def test_runtime_gives_ultralytics_boxes_on_the_demo_image(exports, demo_image, opencv, monkeypatch):
    expected = ultralytics_predict(exports["static"], demo_image)
    if not opencv:
        without_opencv(monkeypatch)
    got = Detector(exports["static"], conf=CONF, iou=IOU).predict(demo_image)
    assert len(got) >= MIN_BOXES
    assert_same_detections(expected, got)
    assert got.names == {i: f"kind{i}" for i in range(80)}  # read from the export's metadata


@pytest.mark.parametrize("opencv", [True, False], ids=["opencv", "numpy-letterbox"])
def test_runtime_gives_ultralytics_boxes_from_a_dynamic_export_on_a_strip(exports, wide_image, opencv, monkeypatch):
    from ultralytics import YOLO

    imgsz, conf = 320, 0.1  # a dynamic export takes any size: 320 x 120 after padding to the stride
    result = YOLO(str(exports["dynamic"]), task="detect").predict(
        str(wide_image), conf=conf, iou=IOU, imgsz=imgsz, device="cpu", verbose=False
    )[0]
    expected = result.boxes.xyxy.numpy(), result.boxes.conf.numpy(), result.boxes.cls.numpy().astype(np.int64)
    if not opencv:
        without_opencv(monkeypatch)
    detector = Detector(exports["dynamic"], conf=conf, iou=IOU, imgsz=imgsz)
    assert detector.info.dynamic and detector.info.imgsz == (imgsz, imgsz)
    got = detector.predict(wide_image)
    assert len(got) >= MIN_BOXES
    assert_same_detections(expected, got)


@pytest.mark.parametrize(
    ("source", "target"),
    [((400, 400), (640, 640)), ((1280, 1280), (640, 640)), ((375, 500), (480, 640)), ((37, 53), (211, 300)),
     ((720, 1280), (333, 592)), ((1000, 1001), (639, 640)), ((1, 5), (3, 640))],
)  # fmt: skip
def test_numpy_resize_is_bit_exact_with_opencv_linear(source, target):
    import cv2

    image = np.random.default_rng(sum(source)).integers(0, 256, (*source, 3), dtype=np.uint8)
    expected = cv2.resize(image, target[::-1], interpolation=cv2.INTER_LINEAR)
    np.testing.assert_array_equal(preprocess.resize_linear(image, target[::-1]), expected)


def test_letterbox_pads_like_ultralytics():
    from ultralytics.data.augment import LetterBox

    image = np.random.default_rng(1).integers(0, 256, (150, 401, 3), dtype=np.uint8)
    for minimal in (False, True):
        expected = LetterBox((640, 640), auto=minimal, stride=32)(image=image)
        canvas, geometry = preprocess.letterbox(image, (640, 640), stride=32, minimal=minimal)
        np.testing.assert_array_equal(canvas, expected)
        assert geometry.input_shape == expected.shape[:2] == ((256, 640) if minimal else (640, 640))


def test_folder_with_an_unreadable_image_skips_it_once_and_processes_the_rest(
    exports, demo_image, wide_image, tmp_path, capsys
):
    folder = tmp_path / "pictures"
    folder.mkdir()
    shutil.copy(demo_image, folder / "a_demo.png")
    shutil.copy(wide_image, folder / "c_strip.jpg")
    (folder / "b_broken.png").write_bytes(b"these bytes are no PNG" * 20)
    (folder / "notes.txt").write_text("not an image, not even looked at")
    output = tmp_path / "out"
    status, out, err = run_infer(
        capsys, exports["static"], folder, "--conf", CONF, "--save", "--json", "--output", output
    )
    assert status == 0
    warnings = [line for line in err if "b_broken.png" in line]
    assert len(warnings) == 1 and warnings[0].startswith("warning: skipped")
    assert "Traceback" not in "\n".join(err)
    records = json.loads((output / "results.json").read_text())
    assert [Path(r["source"]).name for r in records] == ["a_demo.png", "c_strip.jpg"]
    assert records[0]["shape"] == [400, 400] and len(records[0]["detections"]) >= MIN_BOXES
    assert sorted(p.name for p in output.glob("*.jpg")) == ["a_demo.jpg", "c_strip.jpg"]
    assert Image.open(output / "a_demo.jpg").size == (400, 400)
    assert out[-1].startswith("2 images: ") and "skipped 1 unreadable" in out[-1]


def test_video_and_a_broken_video_in_a_folder(exports, demo_image, tmp_path, capsys):
    import cv2

    folder = tmp_path / "videos"
    folder.mkdir()
    frame = cv2.imread(str(demo_image))
    writer = cv2.VideoWriter(str(folder / "clip.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 5, (400, 400))
    for shift in range(4):
        writer.write(np.roll(frame, 10 * shift, axis=1))
    writer.release()
    (folder / "broken.mp4").write_bytes(b"\x00" * 1000)
    output = tmp_path / "out"
    status, _out, err = run_infer(
        capsys, exports["static"], folder, "--conf", CONF, "--save", "--json", "--output", output
    )
    assert status == 0
    assert len([line for line in err if "broken.mp4" in line]) == 1
    records = json.loads((output / "results.json").read_text())
    assert [r["frame"] for r in records] == [0, 1, 2, 3]
    assert all(len(r["detections"]) >= MIN_BOXES for r in records)
    saved = cv2.VideoCapture(str(output / "clip.mp4"))
    assert int(saved.get(cv2.CAP_PROP_FRAME_COUNT)) == 4
    saved.release()


def one_line_error(status: int, out: list[str], err: list[str]) -> str:
    assert status == 2
    assert len(err) == 1, err
    assert "Traceback" not in err[0]
    return err[0]


def test_onnx_without_metadata_names_what_is_missing(exports, demo_image, tmp_path, capsys):
    import onnx

    model = onnx.load(exports["static"])
    del model.metadata_props[:]
    bare = tmp_path / "bare.onnx"
    onnx.save(model, bare)
    message = one_line_error(*run_infer(capsys, bare, demo_image))
    assert message == (
        "lcnet-yolo-infer: error: bare.onnx lacks Ultralytics metadata (names missing); pass --names a,b,c"
    )
    names = ",".join(f"c{i}" for i in range(80))
    status, _out, _ = run_infer(
        capsys, bare, demo_image, "--names", names, "--conf", CONF, "--json", "--output", tmp_path
    )
    assert status == 0
    assert {d["name"] for d in json.loads((tmp_path / "results.json").read_text())[0]["detections"]} <= set(
        names.split(",")
    )


def test_dynamic_onnx_without_metadata_also_needs_imgsz(exports, demo_image, tmp_path, capsys):
    import onnx

    model = onnx.load(exports["dynamic"])
    del model.metadata_props[:]
    onnx.save(model, tmp_path / "bare.onnx")
    message = one_line_error(*run_infer(capsys, tmp_path / "bare.onnx", demo_image))
    assert message.endswith("(names, imgsz missing); pass --names a,b,c and --imgsz 640")


def test_wrong_imgsz_for_a_static_export(exports, demo_image, capsys):
    message = one_line_error(*run_infer(capsys, exports["static"], demo_image, "--imgsz", "320"))
    assert message == (
        "lcnet-yolo-infer: error: --imgsz 320,320 does not fit model.onnx: it was exported with a fixed 128x128 "
        "input; leave --imgsz out or re-export with dynamic=True"
    )


@pytest.fixture(scope="module")
def classifier_onnx(tmp_path_factory) -> Path:
    from ultralytics import YOLO

    weights = tmp_path_factory.mktemp("classifier") / "classifier.pt"
    model = YOLO("pplcnet_x0_25-cls.yaml")
    model.save(weights)
    return Path(YOLO(weights).export(format="onnx", imgsz=64, device="cpu"))


def test_model_of_another_task_is_refused(classifier_onnx, demo_image, capsys):
    message = one_line_error(*run_infer(capsys, classifier_onnx, demo_image))
    assert message == (
        "lcnet-yolo-infer: error: classifier.onnx is a classify model; lcnet-yolo-infer runs detection "
        "(task 'detect') models only"
    )


def test_files_that_are_not_exported_models(exports, demo_image, tmp_path, capsys):
    message = one_line_error(*run_infer(capsys, exports["static"].with_suffix(".pt"), demo_image))
    assert message.startswith("lcnet-yolo-infer: error: ") and "is not an exported model" in message
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x08\x01garbage" * 50)
    message = one_line_error(*run_infer(capsys, junk, demo_image))
    assert message.startswith("lcnet-yolo-infer: error: ") and "is not a loadable ONNX model" in message


def test_unreadable_single_image_and_missing_source(exports, tmp_path, capsys):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"no jpeg here")
    message = one_line_error(*run_infer(capsys, exports["static"], broken))
    assert message.startswith(f"lcnet-yolo-infer: error: cannot read image {broken}")
    message = one_line_error(*run_infer(capsys, exports["static"], tmp_path / "nowhere"))
    assert message == f"lcnet-yolo-infer: error: source {tmp_path / 'nowhere'} does not exist"


def test_command_exits_2_with_one_line_in_a_child_process(exports, tmp_path, subprocess_env):
    env = dict(subprocess_env)
    env["PYTHONPATH"] = os.pathsep.join([str(RUNTIME_DIR / "src"), env.get("PYTHONPATH", "")])
    proc = subprocess.run(
        [sys.executable, "-m", "lcnet_yolo_runtime", str(exports["static"]), str(tmp_path / "missing.png")],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"lcnet-yolo-infer: error: source {tmp_path / 'missing.png'} does not exist"
    ]


def directory_megabytes(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink()) / 2**20


FRESH_VENV_PROBE = """
import importlib.util, json, sys
from lcnet_yolo_runtime.cli import main
status = main(sys.argv[1:])
print("PROBE " + json.dumps({
    "status": status,
    "imported": sorted(m for m in ("torch", "ultralytics", "cv2") if m in sys.modules),
    "installed": sorted(m for m in ("torch", "ultralytics", "cv2") if importlib.util.find_spec(m) is not None),
}))
"""


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_fresh_venv_runs_without_torch_or_ultralytics(exports, demo_image, tmp_path, capsys):
    """``pip install ./runtime`` in a new venv (packages from PyPI): no torch, no Ultralytics, same detections."""
    venv = tmp_path / "venv"
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"}}
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120, env=env)
    python = venv / "bin" / "python"
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(RUNTIME_DIR)],
        capture_output=True, text=True, timeout=600, env=env,
    )  # fmt: skip
    assert install.returncode == 0, install.stderr[-3000:]
    size = directory_megabytes(venv)
    print(f"fresh runtime venv: {size:.0f} MB")

    args = [str(exports["static"]), str(demo_image), "--json", "--output"]
    probe = subprocess.run(
        [str(python), "-c", FRESH_VENV_PROBE, *args, str(tmp_path / "probe")],
        capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path,
    )  # fmt: skip
    report = json.loads(probe.stdout.split("PROBE ", 1)[1])
    assert report == {"status": 0, "imported": [], "installed": []}, probe.stderr[-2000:]
    command = subprocess.run(
        [str(venv / "bin" / "lcnet-yolo-infer"), *args, str(tmp_path / "command")],
        capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert command.returncode == 0, command.stderr[-2000:]
    fresh = json.loads((tmp_path / "command" / "results.json").read_text())[0]["detections"]

    assert infer_main([*args, str(tmp_path / "here")]) == 0  # this venv: OpenCV installed, so its resize
    here = json.loads((tmp_path / "here" / "results.json").read_text())[0]["detections"]
    assert len(fresh) == len(here) >= MIN_BOXES
    for a, b in zip(fresh, here, strict=True):
        assert a["class"] == b["class"] and abs(a["score"] - b["score"]) <= 1e-4
        assert np.abs(np.subtract(a["box"], b["box"])).max() <= 0.02
    assert size <= 300, f"runtime install {size:.0f} MB exceeds the 300 MB target"


@pytest.fixture(scope="module")
def end_to_end_onnx(exports) -> Path:
    """The calibrated detector exported with ``nms=True``: outputs (1, 300, 6), NMS inside the graph."""
    from ultralytics import YOLO

    folder = exports["static"].parent.parent / "nms"
    folder.mkdir(exist_ok=True)
    shutil.copy(exports["static"].with_suffix(".pt"), folder / "model.pt")
    return Path(YOLO(folder / "model.pt").export(format="onnx", imgsz=IMGSZ, nms=True, device="cpu"))


def test_end_to_end_export_is_only_thresholded(end_to_end_onnx, demo_image):
    expected = ultralytics_predict(end_to_end_onnx, demo_image)
    detector = Detector(end_to_end_onnx, conf=CONF, iou=IOU)
    assert detector.info.end2end
    got = detector.predict(demo_image)
    assert len(got) >= MIN_BOXES
    assert_same_detections(expected, got)


@pytest.mark.slow
def test_openvino_folder_gives_the_onnx_boxes(exports, demo_image):
    """The runtime runs OpenVINO in float32, so it must give the boxes Ultralytics finds with the ONNX export.

    (Ultralytics' own OpenVINO predictor is no reference here: it leaves OpenVINO's default precision, bfloat16 on
    CPUs that have it, and its scores then drift by a few hundredths.)
    """
    pytest.importorskip("openvino")
    from ultralytics import YOLO

    folder = exports["static"].parent.parent / "openvino"
    folder.mkdir(exist_ok=True)
    shutil.copy(exports["static"].with_suffix(".pt"), folder / "model.pt")
    ir = Path(YOLO(folder / "model.pt").export(format="openvino", imgsz=IMGSZ, device="cpu"))
    expected = ultralytics_predict(exports["static"], demo_image)
    got = Detector(ir, conf=CONF, iou=IOU, threads=2).predict(demo_image)
    assert got.names[0] == "kind0"  # from metadata.yaml beside the .xml
    assert_same_detections(expected, got)


def test_folder_where_nothing_is_readable_is_an_error(exports, tmp_path, capsys):
    for name in ("a.png", "b.jpg"):
        (tmp_path / name).write_bytes(b"not a picture")
    status, _, err = run_infer(capsys, exports["static"], tmp_path)
    assert status == 2
    assert [line for line in err if line.startswith("warning: skipped")] == [
        f"warning: skipped {tmp_path / name}: cannot read image {tmp_path / name} (not a decodable image)"
        for name in ("a.png", "b.jpg")
    ]
    assert err[-1] == f"lcnet-yolo-infer: error: none of the 2 files in {tmp_path} could be read"


def test_bad_numbers_in_options(exports, demo_image, capsys):
    message = one_line_error(*run_infer(capsys, exports["static"], demo_image, "--conf", "1.5"))
    assert message == "lcnet-yolo-infer: error: --conf 1.5 must be between 0 and 1"
    message = one_line_error(*run_infer(capsys, exports["static"], demo_image, "--max-det", "0"))
    assert message == "lcnet-yolo-infer: error: --max-det 0 must be a positive number"


def test_export_for_batches_is_refused(exports, demo_image, capsys):
    from ultralytics import YOLO

    folder = exports["static"].parent.parent / "batch4"
    folder.mkdir(exist_ok=True)
    shutil.copy(exports["static"].with_suffix(".pt"), folder / "model.pt")
    onnx_file = Path(YOLO(folder / "model.pt").export(format="onnx", imgsz=IMGSZ, batch=4, device="cpu"))
    message = one_line_error(*run_infer(capsys, onnx_file, demo_image))
    assert message == (
        f"lcnet-yolo-infer: error: {onnx_file} was exported for batches of 4; "
        "re-export it with batch=1 (or dynamic=True)"
    )


FORBIDDEN_IN_RUNTIME = ("torch", "torchvision", "ultralytics", "lcnet_yolo")  # lcnet_yolo_runtime is its own package


def forbidden_imports(path: Path) -> list[str]:
    """``line: module`` for every import in ``path`` (at the top or inside functions) of torch, Ultralytics or the
    training package."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        found += [f"{node.lineno}: {name}" for name in names if name.split(".")[0] in FORBIDDEN_IN_RUNTIME]
    return found


def test_nothing_under_runtime_imports_torch_ultralytics_or_lcnet_yolo(tmp_path):
    offenders = {
        str(path.relative_to(RUNTIME_DIR)): found
        for path in sorted(RUNTIME_DIR.rglob("*.py"))
        if (found := forbidden_imports(path))
    }
    assert not offenders, offenders
    probe = tmp_path / "probe.py"
    probe.write_text("import os\nfrom ultralytics import YOLO\n\ndef f():\n    import lcnet_yolo.data\n")
    assert forbidden_imports(probe) == ["2: ultralytics", "5: lcnet_yolo.data"]
