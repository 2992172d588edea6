"""Export formats end to end (export -> predict -> val), one-line errors for missing packages and bad input, track.

The round trips use a model trained for 60 epochs on 32 synthetic images at 64 px (about a minute on 2 CPU cores),
which reaches mAP50-95 ~0.5, so that "mAP within 0.01 of the .pt" compares real numbers and not two zeros.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from ultralytics import YOLO

from lcnet_yolo import formats
from lcnet_yolo.cli import main

IMGSZ = 64
# Allowed |mAP50-95(format) - mAP50-95(.pt)| with rect=False. fp32 and fp16 runtimes: 0.01, the bound
# (measured: 0.000 for TorchScript, ONNX fp32/fp16/dynamic, NCNN and MNN; +0.001 for OpenVINO). int8 quantizes
# weights and activations from calibration on 8 images of a tiny model, and this validation set has 8 images and
# 24 boxes, where one box crossing one of the ten IoU thresholds moves mAP50-95 by ~0.004: measured -0.007 (ONNX
# Runtime) and -0.027 (OpenVINO with nncf) here, +0.004 / -0.019 with the same recipe validated each epoch. So
# int8 gets 0.05. Quantization accuracy at full scale is measured by `lcnet-yolo benchmark` (BENCHMARKS.md).
TOLERANCE = {"onnx-int8": 0.05, "openvino-int8": 0.05}
DEFAULT_TOLERANCE = 0.01


def run_cli(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# ------------------------------------------------------------------------------------------------ package table
def test_every_ultralytics_export_format_has_an_entry():
    from ultralytics.engine.exporter import export_formats

    assert set(formats.FORMATS) == set(export_formats()["Argument"][1:])
    assert set(formats.support._SUPPORT) == set(formats.FORMATS)  # each described by us, none by the fallback
    for support in formats.FORMATS.values():
        assert support.tested or support.note, f"{support.name}: untested formats say why"
        assert support.extra is None or all(formats.PACKAGES[m][1] in (support.extra, "onnx") for m in support.export)
        for module in (*support.export, *support.runtime):
            assert module in formats.PACKAGES, module


def test_every_extra_named_in_messages_exists_in_pyproject_and_lists_its_package():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    extras = pyproject["project"]["optional-dependencies"]

    def flat(extra: str) -> str:  # the extra's requirements, with the extras it includes, lower case
        out = []
        for req in extras[extra]:
            if req.startswith("lcnet-yolo["):
                out += [flat(e) for e in req[len("lcnet-yolo[") : -1].split(",")]
            else:
                out.append(req.lower())
        return " ".join(out)

    for module, (package, extra) in formats.PACKAGES.items():
        if extra is not None:
            assert extra in extras, f"{module}: extra [{extra}] missing from pyproject.toml"
            assert package.lower() in flat(extra), f"{module}: [{extra}] does not install {package}"
    for extra in ("export", "ncnn", "mnn", "track"):  # what the tests below need is in the dev extra
        assert extra in extras["dev"][0]


def test_support_table_lists_every_format_with_install_or_reason(capsys):
    assert main(["formats", "--support"]) == 0
    table = capsys.readouterr().out
    for name in formats.FORMATS:
        assert f"| `{name}` |" in table
    assert "| `ncnn` | `lcnet-yolo[ncnn]` | yes: export, predict, val |" in table
    assert "| `openvino` | `lcnet-yolo[openvino]` | yes" in table
    assert "| `paddle` | `lcnet-yolo[paddle]` | no: " in table


# ------------------------------------------------------------------------------------- missing packages, one line
def block(monkeypatch, *modules: str) -> None:
    """Make ``import module`` fail as if the package were not installed."""
    for module in modules:
        monkeypatch.setitem(sys.modules, module, None)


@pytest.mark.parametrize(
    ("blocked", "args", "expected"),
    [
        ("ncnn", ["export", "format=ncnn"], "format 'ncnn' needs the package 'ncnn': pip install 'lcnet-yolo[ncnn]'"),
        ("pnnx", ["export", "format=ncnn"], "format 'ncnn' needs the package 'pnnx': pip install 'lcnet-yolo[ncnn]'"),
        ("MNN", ["export", "format=mnn"], "format 'mnn' needs the package 'MNN': pip install 'lcnet-yolo[mnn]'"),
        (
            "nncf",
            ["export", "format=openvino", "int8=True"],
            "format 'openvino' with int8 needs the package 'nncf': pip install 'lcnet-yolo[openvino]'",
        ),
        (
            "onnxruntime",
            ["export", "format=onnx", "quantize=int8"],
            "format 'onnx' with int8 needs the package 'onnxruntime': pip install 'lcnet-yolo[onnx]'",
        ),
        (
            "coremltools",
            ["export", "format=coreml"],
            "format 'coreml' needs the package 'coremltools': pip install 'lcnet-yolo[coreml]'",
        ),
        (
            "litert_torch",
            ["export", "format=tflite"],
            "format 'litert' needs the package 'litert-torch': pip install 'lcnet-yolo[tflite]'",
        ),
        (
            "ncnn",
            ["predict", "model=best_ncnn_model"],
            "running a ncnn model needs the package 'ncnn': pip install 'lcnet-yolo[ncnn]'",
        ),
        ("lap", ["track", "source=clip.mp4"], "tracking needs the package 'lap': pip install 'lcnet-yolo[track]'"),
    ],
    ids=["ncnn", "pnnx", "mnn", "openvino-int8", "onnx-int8", "coreml", "tflite", "ncnn-runtime", "track"],
)
def test_missing_package_is_one_line_naming_the_extra(capsys, monkeypatch, tmp_path, blocked, args, expected):
    block(monkeypatch, blocked)
    (tmp_path / "best_ncnn_model").mkdir()
    args = [a.replace("model=", f"model={tmp_path}/") if a.startswith("model=") else a for a in args]
    code, out, err = run_cli(capsys, *args)
    assert code == 2
    assert err == f"lcnet-yolo {args[0]}: error: {expected}\n"
    assert "Traceback" not in out + err


def test_module_error_raised_inside_ultralytics_becomes_the_same_one_line(capsys, monkeypatch, best_pt, tmp_path):
    """Without our pre-check, Ultralytics' own ``import ncnn`` fails; the CLI still prints one line naming the extra."""
    copy = tmp_path / "best.pt"
    copy.write_bytes(Path(best_pt).read_bytes())
    monkeypatch.setattr(formats.support, "require_export", lambda *a, **k: None)  # where check_mode looks it up
    block(monkeypatch, "ncnn")
    code, out, err = run_cli(capsys, "export", f"model={copy}", "format=ncnn", f"imgsz={IMGSZ}")
    assert code == 2
    assert err == "lcnet-yolo export: error: this command needs the package 'ncnn': pip install 'lcnet-yolo[ncnn]'\n"
    assert "Traceback" not in out + err


def test_python_helpers_raise_the_same_message(monkeypatch):
    block(monkeypatch, "lap")
    with pytest.raises(formats.MissingPackageError, match=r"^tracking needs the package 'lap': pip install "):
        formats.require_track()
    formats.require_export("onnx")  # installed: no error
    assert formats.message_for(ModuleNotFoundError("No module named 'MNN'", name="MNN")) == (
        "this command needs the package 'MNN': pip install 'lcnet-yolo[mnn]'"
    )
    assert "not one of lcnet-yolo's extras" in formats.missing_package_message("tensorrt", "format 'engine'")


# ------------------------------------------------------------------------------------------- round trips (slow)
@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict:
    """60 epochs on 32 synthetic images at 64 px; returns the ``best.pt``, data YAML and the .pt's val mAP50-95."""
    import lcnet_yolo
    from lcnet_yolo.data import make_synthetic_dataset

    root = tmp_path_factory.mktemp("formats")
    data = make_synthetic_dataset(root / "data", n_train=32, n_val=8, imgsz=IMGSZ, seed=0)
    model = YOLO("yolov8n-pplcnet.yaml")
    model.train(
        data=str(data),
        epochs=60,
        imgsz=IMGSZ,
        batch=8,
        nbs=8,
        optimizer="AdamW",
        lr0=0.01,
        workers=0,
        device="cpu",
        seed=0,
        plots=False,
        val=False,
        project=str(root / "runs"),
        name="train",
        trainer=lcnet_yolo.LCNetDetectionTrainer,
        verbose=False,
    )
    return {"best": Path(model.trainer.last), "data": str(data), "root": root}


@pytest.fixture(scope="module")
def matrix(trained) -> dict[str, formats.Row]:
    """The format matrix of the trained model at 64 px (one timed prediction per format)."""
    rows = formats.format_matrix(
        trained["best"], trained["data"], imgsz=IMGSZ, workdir=trained["root"] / "matrix", runs=1
    )
    return {row.case.key: row for row in rows}


@pytest.mark.slow
@pytest.mark.parametrize("key", [c.key for c in formats.CASES if c.format != "pt"])
def test_export_predict_val_match_the_pt(matrix, key):
    reference, row = matrix["pt"], matrix[key]
    assert reference.map50_95 is not None and reference.map50_95 > 0.3, reference  # a model that detects
    assert row.error == "" and row.exported, row.error
    assert Path(row.exported).exists()
    assert row.boxes is not None and row.boxes > 0
    difference = row.map50_95 - reference.map50_95
    print(f"{key}: mAP50-95 {row.map50_95:.4f} vs .pt {reference.map50_95:.4f} ({difference:+.4f})")
    assert abs(difference) <= TOLERANCE.get(key, DEFAULT_TOLERANCE)


@pytest.mark.slow
def test_exports_are_what_was_asked_for(matrix):
    import onnx

    def elem_types(path: str) -> set[int]:
        return {init.data_type for init in onnx.load(path).graph.initializer}

    assert onnx.TensorProto.FLOAT16 in elem_types(matrix["onnx-fp16"].exported)
    assert onnx.TensorProto.FLOAT16 not in elem_types(matrix["onnx"].exported)
    assert Path(matrix["onnx-int8"].exported).name == "last_int8.onnx"
    int8_ops = {node.op_type for node in onnx.load(matrix["onnx-int8"].exported).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= int8_ops
    dims = onnx.load(matrix["onnx-dynamic"].exported).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param for d in dims] == ["batch", "", "height", "width"]
    assert Path(matrix["openvino-int8"].exported).name == "last_int8_openvino_model"


@pytest.mark.slow
def test_formats_command_prints_the_matrix(capsys, trained, tmp_path):
    args = ["formats", "--model", trained["best"], "--data", trained["data"], "--imgsz", IMGSZ]
    code, out, _ = run_cli(capsys, *args, "--formats", "pt,onnx", "--runs", "2", "--workdir", tmp_path)
    assert code == 0
    table = [line for line in out.splitlines() if line.startswith("| ")]
    assert table[0].startswith("| format | export | predict (boxes) | val mAP50-95 |")
    assert [line.split("|")[1].strip() for line in table[1:]] == ["PyTorch (.pt)", "ONNX"]
    assert "| ONNX | ok | ok (" in out


# ---------------------------------------------------------------------------------------------------- bad input
@pytest.mark.slow
def test_wrong_imgsz_for_a_static_export_is_one_line(capsys, matrix, trained):
    image = Path(trained["data"]).parent / "images" / "val" / "val_0000.png"
    static, dynamic = matrix["onnx"].exported, matrix["onnx-dynamic"].exported
    code, _, err = run_cli(capsys, "predict", f"model={static}", f"source={image}", "imgsz=96")
    assert code == 2
    assert err == (
        f"lcnet-yolo predict: error: {static} was exported for a fixed 64x64 input, not imgsz=96: "
        "leave imgsz out, or export again with imgsz=96 or dynamic=True\n"
    )
    code, _, err = run_cli(capsys, "val", f"model={matrix['ncnn'].exported}", f"data={trained['data']}", "imgsz=128")
    assert code == 2 and "fixed 64x64 input, not imgsz=128" in err
    project = trained["root"] / "predict-runs"
    assert run_cli(capsys, "predict", f"model={dynamic}", f"source={image}", "imgsz=96", f"project={project}")[0] == 0
    assert run_cli(capsys, "predict", f"model={static}", f"source={image}", "imgsz=64", f"project={project}")[0] == 0


def test_a_model_of_another_task_is_one_line(capsys, offline_training, tmp_path):
    classifier = tmp_path / "classifier.pt"
    YOLO("pplcnet_x0_25-cls.yaml").save(classifier)
    code, out, err = run_cli(
        capsys, "detect", "val", f"model={classifier}", f"data={offline_training['data']}", "imgsz=64"
    )
    assert code == 2
    assert err == f"lcnet-yolo val: error: {classifier} is a classify model, not a detect model\n"
    assert "Traceback" not in out + err


def test_predict_reports_an_unreadable_image_in_a_folder_once(capsys, caplog, offline_training, best_pt, tmp_path):
    images = Path(offline_training["data"]).parent / "images"
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 truncated jpeg")
    (folder / "good.png").write_bytes((images / "val" / "val_0000.png").read_bytes())
    code = main(["predict", f"model={best_pt}", f"source={folder}", "imgsz=64", f"project={tmp_path}", "save"])
    _, err = capsys.readouterr()
    assert code == 0 and err == ""
    reports = [r.getMessage() for r in caplog.records if "broken.jpg" in r.getMessage()]
    assert len(reports) == 1 and "Image Read Error" in reports[0]
    assert [p.stem for p in (tmp_path / "predict").iterdir()] == ["good"]


def test_unreadable_video_is_one_line(capsys, best_pt, tmp_path):
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"this is not a video" * 50)
    code, _, err = run_cli(capsys, "track", f"model={best_pt}", f"source={video}", "imgsz=64")
    assert code == 2
    assert err == f"lcnet-yolo track: error: Failed to open video {video}\n"


def test_track_without_source_is_one_line(capsys, best_pt):
    code, _, err = run_cli(capsys, "track", f"model={best_pt}")
    assert code == 2 and err.count("\n") == 1 and "source=" in err


# --------------------------------------------------------------------------------------------------------- track
def write_video(path: Path, frames: int = 8, size: int = IMGSZ) -> Path:
    """A few frames of noise with one bright rectangle moving right by 4 px per frame (MJPG in AVI)."""
    import cv2

    rng = np.random.default_rng(0)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (size, size))
    for i in range(frames):
        frame = rng.integers(0, 80, (size, size, 3), dtype=np.uint8)
        frame[20:40, 4 + 4 * i : 20 + 4 * i] = (200, 220, 240)
        writer.write(frame)
    writer.release()
    return path


@pytest.mark.slow
@pytest.mark.parametrize("tracker", ["bytetrack.yaml", "botsort.yaml"])
def test_track_follows_a_moving_box_with_one_id(capsys, trained, tmp_path, tracker):
    from lcnet_yolo.io.checkpoints import load_yolo

    video = write_video(tmp_path / "clip.avi")
    model = load_yolo(trained["best"])
    results = list(model.track(str(video), imgsz=IMGSZ, tracker=tracker, stream=True, verbose=False))
    assert len(results) == 8
    ids = [set(r.boxes.id.int().tolist()) for r in results[1:] if r.boxes.id is not None]
    main_id, frames_with_it = Counter(i for frame in ids for i in frame).most_common(1)[0]
    # the box is tracked in (almost) every frame under one ID (a duplicate box of the tiny model may take over once)
    assert frames_with_it >= 6, ids
    centres = [
        float(r.boxes.xywh[i, 0])
        for r in results[1:]
        if r.boxes.id is not None
        for i, track in enumerate(r.boxes.id.int().tolist())
        if track == main_id
    ]
    assert centres[-1] > centres[0] + 10, centres  # and that track moved right, as the box did

    args = ("track", f"model={trained['best']}", f"source={video}", f"imgsz={IMGSZ}", f"tracker={tracker}")
    code, _, err = run_cli(capsys, *args, f"project={tmp_path}", "name=t", "save_txt")
    assert code == 0, err
    labels = sorted((tmp_path / "t" / "labels").glob("*.txt"))
    assert labels, "track wrote no label files"
    assert all(len(line.split()) == 6 for line in labels[-1].read_text().splitlines())  # class, box, track ID


def test_formats_doc_table_is_what_the_command_prints(capsys):
    assert main(["formats", "--support"]) == 0
    printed = [line for line in capsys.readouterr().out.splitlines() if line.startswith("|")]
    doc = (Path(__file__).resolve().parent.parent / "docs" / "formats.md").read_text()
    documented = [line for line in doc.split("## All formats", 1)[1].splitlines() if line.startswith("|")]
    assert documented == printed
