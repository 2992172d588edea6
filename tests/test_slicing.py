"""Sliced prediction: windows, the merge (against SAHI's postprocess), ``predict_sliced`` and both commands."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lcnet_yolo.slicing import core
from lcnet_yolo.slicing.core import SliceError, check_slice, merge_detections, slice_windows, to_picture

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
IMGSZ = 128


# ------------------------------------------------------------------------------------------------ shared numpy code
@pytest.mark.parametrize(
    ("main", "runtime"),
    [("src/lcnet_yolo/slicing/core.py", "runtime/src/lcnet_yolo_runtime/slicing.py"),
     ("src/lcnet_yolo/slicing/geo.py", "runtime/src/lcnet_yolo_runtime/geo.py")],
)  # fmt: skip
def test_code_shared_with_the_runtime_is_byte_identical(main, runtime):
    assert (REPO / main).read_bytes() == (REPO / runtime).read_bytes()


# ---------------------------------------------------------------------------------------------------------- windows
def test_windows_match_sahis_layout_on_the_held_out_strip():
    from sahi.slicing import get_slice_bboxes

    ours = slice_windows(494, 2299, 416, 0.2)
    theirs = get_slice_bboxes(494, 2299, 416, 416, overlap_height_ratio=0.2, overlap_width_ratio=0.2)
    assert ours.tolist() == theirs
    # step 416 - int(0.2 * 416) = 333; the last column and row end on the picture's edges
    assert sorted({x0 for x0, *_ in ours.tolist()}) == [0, 333, 666, 999, 1332, 1665, 1883]
    assert sorted({y0 for _, y0, *_ in ours.tolist()}) == [0, 78]


def test_an_axis_shorter_than_the_slice_is_one_window_across():
    assert slice_windows(207, 1249, 416, 0.2).tolist() == [
        [0, 0, 416, 207], [333, 0, 749, 207], [666, 0, 1082, 207], [833, 0, 1249, 207]
    ]  # fmt: skip
    assert slice_windows(150, 400, 400, 0.2).tolist() == [[0, 0, 400, 150]]


@pytest.mark.parametrize(
    ("size", "overlap", "message"),
    [
        (16, 0.2, "slice=16 must be a whole number of pixels, at least the model's stride 32"),
        (64.5, 0.2, "slice=64.5 must be a whole number of pixels, at least the model's stride 32"),
        (64, 1.0, "overlap=1.0 must be a fraction in [0, 1)"),
        (64, -0.1, "overlap=-0.1 must be a fraction in [0, 1)"),
        (512, 0.2, "slice=512 is larger than the picture (400x300 px): predict it whole, without slice="),
    ],
)
def test_bad_slices_are_refused(size, overlap, message):
    with pytest.raises(SliceError) as error:
        check_slice(300, 400, size, overlap, stride=32)
    assert str(error.value) == message


# ------------------------------------------------------------------------------------------------------------ merge
def sahi_merge(boxes, scores, classes, class_agnostic=False):
    """SAHI's default postprocess of ``get_sliced_prediction`` (GREEDYNMM, IOS, 0.5) on the same detections."""
    from sahi.postprocess.combine import GreedyNMMPostprocess
    from sahi.prediction import ObjectPrediction

    predictions = [
        ObjectPrediction(bbox=list(map(float, b)), category_id=int(c), category_name=str(int(c)), score=float(s))
        for b, s, c in zip(boxes, scores, classes, strict=True)
    ]
    merged = GreedyNMMPostprocess(match_threshold=0.5, match_metric="IOS", class_agnostic=class_agnostic)(predictions)
    return (
        np.array([p.bbox.to_xyxy() for p in merged], dtype=np.float64).reshape(-1, 4),
        np.array([p.score.value for p in merged]),
        np.array([p.category.id for p in merged], dtype=np.int64),
    )


def as_rows(boxes, scores, classes) -> np.ndarray:
    rows = np.column_stack([np.asarray(boxes, np.float64).reshape(-1, 4), scores, classes])
    return rows[np.lexsort(rows.T[::-1])]


@pytest.mark.parametrize("class_agnostic", [False, True], ids=["per-class", "class-agnostic"])
def test_merge_equals_sahis_postprocess_on_random_detections(class_agnostic):
    rng = np.random.default_rng(0)
    merged_any = 0
    for _ in range(150):
        n = int(rng.integers(0, 40))
        corner = rng.uniform(0, 300, (n, 2))
        boxes = np.column_stack([corner, corner + rng.uniform(4, 90, (n, 2))]).round(2)
        scores = rng.uniform(0.05, 1.0, n).round(5)
        classes = rng.integers(0, 3, n)
        ours = merge_detections(boxes, scores, classes, np.arange(n), class_agnostic=class_agnostic)
        theirs = sahi_merge(boxes, scores, classes, class_agnostic)
        assert len(ours[0]) == len(theirs[0])
        np.testing.assert_allclose(as_rows(*ours), as_rows(*theirs), atol=1e-3)
        merged_any += n - len(ours[0])
    assert merged_any > 100  # the sets do overlap: many boxes were merged, not a trivial pass-through


def test_merge_equals_sahis_postprocess_on_hand_made_detections():
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [2, 2, 8, 8], [5, 0, 15, 10], [30, 30, 40, 40],
                      [31, 31, 39, 45], [100, 100, 101, 101]], dtype=float)  # fmt: skip
    scores = np.array([0.9, 0.9, 0.3, 0.6, 0.5, 0.7, 0.2])
    classes = np.array([0, 0, 0, 0, 1, 1, 0])
    ours = merge_detections(boxes, scores, classes, np.arange(len(boxes)))
    np.testing.assert_allclose(as_rows(*ours), as_rows(*sahi_merge(boxes, scores, classes)), atol=1e-6)
    # the 0..10 group takes 5..15 too (IOS exactly 0.5: the threshold counts), then the 30..40 pair, the dot
    assert as_rows(*ours)[:, :4].tolist() == [[0, 0, 15, 10], [30, 30, 40, 45], [100, 100, 101, 101]]


def test_boxes_of_one_window_are_left_to_the_models_nms():
    boxes = np.array([[0, 0, 100, 100], [10, 10, 40, 40]], dtype=float)  # nested: IOS 1
    scores, classes = np.array([0.9, 0.8]), np.array([0, 0])
    assert len(merge_detections(boxes, scores, classes, np.array([3, 3]))[0]) == 2
    assert len(merge_detections(boxes, scores, classes, np.array([3, 4]))[0]) == 1


def test_tree_crowns_cut_by_window_edges_are_merged_into_one_box_each():
    """Hand-checked: a 180 x 100 picture, slice 100, overlap 0.2: windows x 0..100 and 80..180.

    Crown A (x 60..95) is whole in window 0 and cut at x=80 in window 1; crown B (x 90..130) is cut at x=100 in
    window 0 and whole in window 1; crown C (x 20..50) is in window 0 only.
    """
    windows = slice_windows(100, 180, 100, 0.2)
    assert windows.tolist() == [[0, 0, 100, 100], [80, 0, 180, 100]]
    in_window = {  # (box in window pixels, score) per window
        0: [([60, 30, 95, 70], 0.9), ([90, 40, 100, 80], 0.5), ([20, 10, 50, 40], 0.8)],
        1: [([0, 30, 15, 70], 0.6), ([10, 40, 50, 80], 0.85)],
    }
    boxes = np.concatenate([to_picture([b for b, _ in found], windows[w]) for w, found in in_window.items()])
    scores = np.array([s for found in in_window.values() for _, s in found])
    groups = np.array([w for w, found in in_window.items() for _ in found])
    assert boxes[3].tolist() == [80, 30, 95, 70] and boxes[4].tolist() == [90, 40, 130, 80]
    merged = merge_detections(boxes, scores, np.zeros(5, np.int64), groups)
    assert merged[0].tolist() == [[60, 30, 95, 70], [90, 40, 130, 80], [20, 10, 50, 40]]
    np.testing.assert_allclose(merged[1], [0.9, 0.85, 0.8])
    # the cut boxes lie inside the whole ones (IOS 1) though their IoU is low (0.43 and 0.25): NMS would keep them
    np.testing.assert_allclose(as_rows(*merged), as_rows(*sahi_merge(boxes, scores, np.zeros(5))), atol=1e-6)


# ---------------------------------------------------------------------------------------------- the main package
@pytest.fixture(scope="module")
def detector_pt(tmp_path_factory) -> Path:
    """An untrained detector with real BatchNorm statistics (varied boxes and scores without training)."""
    from lcnet_yolo.data import deepforest_image
    from test_runtime import calibrated_detector

    return calibrated_detector(tmp_path_factory.mktemp("sliced-model"), deepforest_image("SOAP_031.png"))


@pytest.fixture(scope="module")
def picture(tmp_path_factory) -> Path:
    """The demo's 400 x 400 NEON picture, cut to 400 x 300."""
    from lcnet_yolo.data import deepforest_image

    target = tmp_path_factory.mktemp("sliced-pictures") / "crowns.png"
    Image.open(deepforest_image("SOAP_031.png")).convert("RGB").crop((0, 50, 400, 350)).save(target)
    return target


def rows_of(result) -> np.ndarray:
    data = result.boxes.data.cpu().numpy().astype(np.float64)
    return data[np.lexsort(data.T[::-1])]


def test_one_window_equal_to_the_picture_gives_exactly_the_whole_picture_boxes(detector_pt, picture):
    from ultralytics import YOLO

    from lcnet_yolo.slicing import predict_sliced

    model = YOLO(detector_pt)
    whole = model.predict(str(picture), imgsz=IMGSZ, conf=0.05, verbose=False)[0]
    sliced = predict_sliced(model, str(picture), slice=400, overlap=0.2, imgsz=IMGSZ, conf=0.05)
    assert sliced.windows.tolist() == [[0, 0, 400, 300]]
    assert len(whole.boxes) >= 5
    np.testing.assert_array_equal(rows_of(sliced), rows_of(whole))


def test_predict_sliced_returns_one_result_built_from_its_windows(detector_pt, picture):
    from ultralytics import YOLO

    from lcnet_yolo.slicing import predict_sliced

    model = YOLO(detector_pt)
    result = predict_sliced(model, str(picture), slice=128, overlap=0.2, imgsz=IMGSZ, conf=0.05)
    assert result.orig_shape == (300, 400) and result.path == str(picture)
    assert len(result.windows) == 12  # columns 0, 103, 206, 272; rows 0, 103, 172
    pixels = np.asarray(Image.open(picture))[..., ::-1]  # BGR, as Ultralytics reads
    parts = []
    for group, (x0, y0, x1, y1) in enumerate(result.windows):
        found = model.predict(np.ascontiguousarray(pixels[y0:y1, x0:x1]), imgsz=IMGSZ, conf=0.05, verbose=False)[0]
        parts.append((to_picture(found.boxes.xyxy.numpy(), [x0, y0]), found.boxes.conf.numpy(),
                      found.boxes.cls.numpy(), np.full(len(found.boxes), group)))  # fmt: skip
    expected = merge_detections(*(np.concatenate(c) for c in zip(*parts, strict=True)))
    assert len(result.boxes) == len(expected[0]) >= 5
    np.testing.assert_allclose(rows_of(result), as_rows(*expected), atol=1e-3)
    with_whole = predict_sliced(model, str(picture), slice=128, overlap=0.2, full=True, imgsz=IMGSZ, conf=0.05)
    assert len(with_whole.boxes) >= len(result.boxes)


def run_cli(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / args[0]), *args[1:]], capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=300)  # fmt: skip


def test_predict_command_saves_the_sliced_picture_and_labels(detector_pt, picture, tmp_path, subprocess_env):
    from ultralytics import YOLO

    from lcnet_yolo.slicing import predict_sliced

    proc = run_cli("lcnet-yolo", "predict", f"model={detector_pt}", f"source={picture}", "slice=128", "overlap=0.2",
                   f"imgsz={IMGSZ}", "conf=0.05", "save_txt=True", f"project={tmp_path}", "name=sliced",
                   cwd=tmp_path, env=subprocess_env)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    expected = predict_sliced(YOLO(detector_pt), str(picture), slice=128, overlap=0.2, imgsz=IMGSZ, conf=0.05)
    assert f"crowns.png: 400x300, 12 windows of 128 px (overlap 0.2): {len(expected.boxes)} boxes" in proc.stdout
    run = tmp_path / "sliced"
    assert Image.open(run / "crowns.jpg").size == (400, 300)
    lines = (run / "labels" / "crowns.txt").read_text().splitlines()
    assert len(lines) == len(expected.boxes)
    xywhn = np.array([[float(v) for v in line.split()[1:]] for line in lines])
    np.testing.assert_allclose(np.sort(xywhn, axis=0), np.sort(expected.boxes.xywhn.numpy(), axis=0), atol=1e-5)
    assert not list(run.rglob(".*partial*"))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["slice=16"], "slice=16 must be a whole number of pixels, at least the model's stride 32"),
        (["slice=128", "overlap=1"], "overlap=1 must be a fraction in [0, 1)"),
        (["slice=512"], "slice=512 is larger than the picture (400x300 px): predict it whole, without slice="),
        (["slice=128", "source=VIDEO"], "source=VIDEO: slice= works on pictures, not videos or other files; "
                                        "predict it whole"),
        (["overlap=0.3"], "overlap= and slice_full= go with slice=SIZE (e.g. slice=640 overlap=0.2)"),
    ],
)  # fmt: skip
def test_predict_command_refuses_bad_slices_in_one_line(detector_pt, picture, tmp_path, args, message):
    from lcnet_yolo.cli import main

    video = tmp_path / "clip.mp4"
    video.write_bytes(b"\x00" * 64)
    args = [a.replace("VIDEO", str(video)) for a in args]
    message = message.replace("VIDEO", str(video))
    source = [] if any(a.startswith("source=") for a in args) else [f"source={picture}"]
    status = main(["predict", f"model={detector_pt}", *source, *args, f"project={tmp_path}", "name=bad"])
    assert status == 2
    assert not (tmp_path / "bad").exists()
    proc = run_cli("lcnet-yolo", "predict", f"model={detector_pt}", *source, *args, f"project={tmp_path}",
                   "name=bad", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"lcnet-yolo predict: error: {message}"]
    assert not (tmp_path / "bad").exists()


def test_slice_keys_belong_to_predict_only(tmp_path, capsys):
    from lcnet_yolo.cli import main

    assert main(["val", "model=yolov8n-pplcnet.yaml", "slice=640"]) == 2
    assert capsys.readouterr().err.strip() == (
        "lcnet-yolo val: error: slice=, overlap= and slice_full= are predict arguments (sliced prediction of pictures)"
    )


# ---------------------------------------------------------------------------------------------------- the runtime
@pytest.fixture(scope="module")
def detector_onnx(detector_pt, tmp_path_factory) -> Path:
    from ultralytics import YOLO

    folder = tmp_path_factory.mktemp("sliced-onnx")
    shutil.copy(detector_pt, folder / "model.pt")
    return Path(YOLO(folder / "model.pt").export(format="onnx", imgsz=IMGSZ, device="cpu"))


def test_runtime_predict_sliced_equals_ultralytics_sliced(detector_onnx, detector_pt, picture):
    from lcnet_yolo_runtime import Detector
    from ultralytics import YOLO

    from lcnet_yolo.slicing import predict_sliced

    detector = Detector(detector_onnx, conf=0.05)
    whole = detector.predict(picture)
    one = detector.predict_sliced(picture, slice=400, overlap=0.2)
    np.testing.assert_array_equal(as_rows(one.boxes, one.scores, one.classes),
                                  as_rows(whole.boxes, whole.scores, whole.classes))  # fmt: skip
    sliced = detector.predict_sliced(picture, slice=128, overlap=0.2)
    reference = predict_sliced(YOLO(detector_pt), str(picture), slice=128, overlap=0.2, imgsz=IMGSZ, conf=0.05)
    assert len(sliced) >= 5
    # ONNX Runtime against torch: the same boxes up to float noise (a box at the threshold may flip)
    assert abs(len(sliced) - len(reference.boxes)) <= 1
    reference_boxes = reference.boxes.xyxy.numpy()
    best_overlap = [core._ios(box, reference_boxes).max() for box in sliced.boxes]
    assert np.median(best_overlap) > 0.99


def test_runtime_command_slices_and_refuses_bad_input(detector_onnx, picture, tmp_path, capsys):
    from lcnet_yolo_runtime.cli import main

    out = tmp_path / "out"
    assert main([str(detector_onnx), str(picture), "--slice", "128", "--conf", "0.05", "--json", "--save",
                 "--output", str(out)]) == 0  # fmt: skip
    records = json.loads((out / "results.json").read_text())
    assert records[0]["shape"] == [300, 400] and len(records[0]["detections"]) >= 5
    assert Image.open(out / "crowns.jpg").size == (400, 300)
    capsys.readouterr()
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"\x00" * 64)
    for args, message in (
        (["--slice", "16"], "slice=16 must be a whole number of pixels, at least the model's stride 32"),
        (["--slice", "128", "--overlap", "1.5"], "overlap=1.5 must be a fraction in [0, 1)"),
        (["--slice", "640"], "slice=640 is larger than the picture (400x300 px): predict it whole, without slice="),
    ):
        assert main([str(detector_onnx), str(picture), *args, "--save", "--output", str(tmp_path / "bad")]) == 2
        assert capsys.readouterr().err.splitlines() == [f"lcnet-yolo-infer: error: {message}"]
    assert main([str(detector_onnx), str(video), "--slice", "128"]) == 2
    expected = f"lcnet-yolo-infer: error: --slice works on pictures, not videos: {video}"
    assert capsys.readouterr().err.splitlines() == [expected]
    assert not (tmp_path / "bad").exists()
    proc = run_cli("lcnet-yolo-infer", str(detector_onnx), str(picture), "--slice", "128", "--overlap", "1",
                   cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == ["lcnet-yolo-infer: error: overlap=1.0 must be a fraction in [0, 1)"]


@pytest.mark.parametrize(("imgsz", "how"), [
    (128, "sliced: 12 windows of 128 px, overlap 0.2 (400x300 px is larger than the 128 px input)"),
    (416, "whole: 400x300 px fits the 416 px input"),
])  # fmt: skip
def test_demo_predicts_its_picture_the_better_way_and_says_which(detector_pt, picture, tmp_path, imgsz, how):
    from ultralytics import YOLO

    from lcnet_yolo.slicing import predict_sliced
    from lcnet_yolo.slicing.command import demo_prediction

    model = YOLO(detector_pt)
    saved, boxes, said = demo_prediction(model, picture, imgsz, "cpu", tmp_path)
    assert said == how
    assert saved.parent == tmp_path / "predict" and saved.name == "crowns.jpg" and saved.is_file()
    if imgsz == 128:
        assert boxes == len(predict_sliced(model, picture, slice=128, imgsz=128, conf=0.25).boxes)
    else:
        assert boxes == len(model.predict(str(picture), imgsz=416, conf=0.25, verbose=False)[0].boxes)


# ------------------------------------------------------------------------------------------------------ benchmark
def test_benchmark_scores_with_ultralytics_matching():
    from lcnet_yolo.benchmark.sliced import map_scores

    truth = np.array([[0, 0, 10, 10], [20, 20, 40, 40], [50, 50, 60, 70]], dtype=float)
    perfect = np.column_stack([truth, [0.9, 0.8, 0.7], np.zeros(3)])
    assert map_scores([perfect], [truth]) == pytest.approx({"map50": 0.995, "map50_95": 0.995}, abs=1e-3)
    shifted = perfect.copy()
    shifted[:, [0, 2]] += 2  # IoU 0.67 for the 10 px boxes, 0.82 for the 20 px one
    scores = map_scores([shifted], [truth])
    assert scores["map50"] == pytest.approx(0.995, abs=1e-3) and scores["map50_95"] < 0.5
    assert map_scores([perfect[:1]], [truth])["map50"] == pytest.approx(0.332, abs=0.01)  # recall 1/3


@pytest.mark.slow
def test_benchmark_pictures_are_the_held_out_strips_at_native_size_and_the_whole_val_pictures():
    from lcnet_yolo.benchmark.sliced import benchmark_pictures

    pictures = {p["name"]: p for p in benchmark_pictures()}
    shapes = {name: p["pixels"].shape for name, p in pictures.items()}
    assert shapes == {"YELL_528000_4978000": (494, 2299, 3), "YELL_541000_4977000": (207, 1249, 3),
                      "OSBS_029": (400, 400, 3), "SOAP_061": (400, 400, 3)}  # fmt: skip
    assert {name: len(p["boxes"]) for name, p in pictures.items()} == {
        "YELL_528000_4978000": 127, "YELL_541000_4977000": 50, "OSBS_029": 61, "SOAP_061": 37}  # fmt: skip
