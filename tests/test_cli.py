"""The ``lcnet-yolo`` command: help, Ultralytics' arguments, clear one-line errors for bad input, demo."""

from __future__ import annotations

import os
import sys
import types
from pathlib import Path

import pytest
import torch
from ultralytics import YOLO

from lcnet_yolo.cli import main
from lcnet_yolo.plugin.register import packaged_models


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_help_lists_our_models_and_datasets(capsys):
    code, out, _ = run_cli(capsys, "--help")
    assert code == 0
    for name in packaged_models():
        assert name in out
    from lcnet_yolo.data import DATASETS

    for name in DATASETS:
        assert name in out


def test_unknown_model_name_is_one_line_listing_the_packaged_models(capsys):
    code, _, err = run_cli(capsys, "val", "model=yolov8q-pplcnet.yaml")
    assert code == 2
    assert err.count("\n") == 1 and "yolov8s-pplcnet.yaml" in err and "Traceback" not in err


def test_misspelt_argument_gets_ultralytics_suggestion(capsys):
    code, out, err = run_cli(capsys, "train", "model=yolov8n-pplcnet.yaml", "epoch=3")
    assert code == 2
    assert "'epoch' is not a valid YOLO argument" in err and "epochs" in err
    assert "yolo TASK MODE ARGS" not in out + err  # Ultralytics' own `yolo` help is not shown


def test_missing_data_yaml_is_reported(capsys, best_pt, tmp_path):
    missing = tmp_path / "nowhere" / "data.yaml"
    code, _, err = run_cli(capsys, "val", f"model={best_pt}", f"data={missing}", f"project={tmp_path}")
    assert code == 2 and str(missing) in err and "does not exist" in err


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("path: /tmp\ntrain: images/train\nnames: {0: tree}\n", "'val:' key missing"),
        ("path: /tmp\ntrain: [images/train\nval: images/val\n", "YAML syntax error"),
    ],
    ids=["without-val", "bad-syntax"],
)
def test_malformed_data_yaml_is_reported(capsys, best_pt, tmp_path, content, expected):
    data = tmp_path / "data.yaml"
    data.write_text(content)
    code, _, err = run_cli(capsys, "val", f"model={best_pt}", f"data={data}", f"project={tmp_path}")
    assert code == 2 and expected in err and "Traceback" not in err


def test_predict_skips_an_undecodable_image_and_annotates_the_rest(capsys, offline_training, best_pt, tmp_path):
    images = Path(offline_training["data"]).parent / "images"
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "broken.png").write_bytes((images / "train" / "undecodable.png").read_bytes())
    (folder / "good.png").write_bytes((images / "val" / "val_0000.png").read_bytes())
    results = YOLO(best_pt).predict(source=str(folder), imgsz=64, device="cpu", save=True, project=str(tmp_path))
    assert [Path(r.path).name for r in results] == ["good.png"]
    assert [p.stem for p in Path(results[0].save_dir).iterdir()] == ["good"]


def test_val_and_predict_through_the_cli_write_ultralytics_runs(capsys, offline_training, best_pt, tmp_path):
    data = offline_training["data"]
    common = ("imgsz=64", "device=cpu", f"project={tmp_path}")
    assert run_cli(capsys, "val", f"model={best_pt}", f"data={data}", "batch=4", "name=v", *common)[0] == 0
    assert (tmp_path / "v").is_dir()
    source = Path(data).parent / "images" / "val" / "val_0001.png"
    assert run_cli(capsys, "predict", f"model={best_pt}", f"source={source}", "save", "name=p", *common)[0] == 0
    assert [p.stem for p in (tmp_path / "p").iterdir()] == ["val_0001"]


def test_benchmark_command_is_dispatched_with_its_arguments(capsys, monkeypatch):
    calls = []
    fake = types.ModuleType("lcnet_yolo.benchmark")
    fake.main = lambda argv: calls.append(argv) or 7
    monkeypatch.setitem(sys.modules, "lcnet_yolo.benchmark", fake)
    assert main(["benchmark", "--models", "yolov8n-pplcnet.yaml", "--imgsz", "64"]) == 7
    assert calls == [["--models", "yolov8n-pplcnet.yaml", "--imgsz", "64"]]


def test_info_accepts_our_names_without_suffix_and_ultralytics_own_yamls(capsys):
    assert main(["info", "model=yolov8s-pplcnet", "imgsz=64"]) == 0
    assert main(["info", "model=yolov8n.yaml", "imgsz=64"]) == 0  # for side-by-side comparisons
    assert main(["info", "model=yolov8q.yaml"]) == 2


@pytest.mark.slow
def test_train_with_backbone_weights_from_the_cli(capsys, offline_training, tmp_path):
    pytest.importorskip("lcnet_yolo.io.weights")
    from lcnet_yolo.nn import PPLCNet

    torch.manual_seed(0)
    torch.save(PPLCNet(scale=0.5).state_dict(), tmp_path / "x0_5.pt")
    args = ("train", "model=yolov8n-pplcnet.yaml", f"data={offline_training['data']}", "epochs=1", "imgsz=64")
    code, _, err = run_cli(
        capsys,
        *args,
        "batch=4",
        "workers=0",
        "device=cpu",
        "plots=False",
        f"project={tmp_path}",
        "name=t",
        f"backbone_weights={tmp_path / 'x0_5.pt'}",
    )
    assert code == 0, err
    assert (tmp_path / "t" / "weights" / "best.pt").is_file()

    torch.save(PPLCNet(scale=1.0).state_dict(), tmp_path / "x1_0.pt")
    code, _, err = run_cli(capsys, *args, f"project={tmp_path}", f"backbone_weights={tmp_path / 'x1_0.pt'}")
    assert code == 2 and "Traceback" not in err and err.count("\n") <= 3, err


@pytest.mark.slow
def test_demo_quick_trains_validates_predicts_and_exports(capsys, tmp_path):
    code, out, _ = run_cli(capsys, "demo", "--quick", "--project", tmp_path / "demo")
    assert code == 0
    summary = out[out.index("lcnet-yolo demo finished") :]
    assert "mAP50" in summary and "mAP50-95" in summary
    onnx = Path(summary.split("ONNX model", 1)[1].split()[0])
    prediction = Path(summary.split("prediction", 1)[1].split()[0])
    assert onnx.suffix == ".onnx" and onnx.is_file() and prediction.is_file()
    assert (tmp_path / "demo" / "train" / "results.png").is_file()


def test_convert_writes_safetensors_that_predict_like_the_checkpoint(capsys, best_pt, tmp_path):
    from lcnet_yolo.io.checkpoints import load_yolo
    from lcnet_yolo.io.safetensors import load_safetensors

    target = tmp_path / "best.safetensors"
    code, out, err = run_cli(capsys, "convert", str(best_pt), str(target))
    assert code == 0 and target.is_file() and str(target) in out, err
    image = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        expected = load_yolo(best_pt).model.eval()(image)[0]
        actual = load_safetensors(target).model.eval()(image)[0]
    assert torch.equal(expected, actual)


def test_cli_refuses_a_checkpoint_whose_pickle_runs_code(capsys, tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"

    class RunsCode:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    torch.save({"model": RunsCode()}, evil)
    code, _, err = run_cli(capsys, "predict", f"model={evil}", f"source={tmp_path}")
    assert code == 2 and "evil.pt" in err and "refused" in err
    assert not marker.exists()


BAD_ARGUMENTS = [  # (mode, argument, what the one-line error must say)
    ("train", "data=missing.yaml", "data=missing.yaml: 'missing.yaml' does not exist"),
    ("train", "epochs=abc", "'epochs' must be an int"),
    ("train", "epochs=0", "'epochs' must be >= 1"),
    ("train", "batch=0", "'batch=0' is invalid"),
    ("train", "batch=-2", "'batch=-2' is invalid"),
    ("train", "batch=2.5", "'batch=2.5' is invalid"),
    ("train", "imgsz=-1", "'imgsz=-1' is invalid"),
    ("train", "lr0=-1", "'lr0' values are between 0.0 and 1.0"),
    ("train", "workers=-1", "'workers' must be >= 0"),
    ("train", "patience=-1", "'patience' must be >= 0"),
    ("train", "colour=3", "'colour' is not a valid YOLO argument"),
    ("train", "backbone_weights=imagenet-sld", "unknown backbone weights 'imagenet-sld'"),
    ("val", "data=missing.yaml", "'missing.yaml' does not exist"),
    ("val", "conf=2", "'conf' values are between 0.0 and 1.0"),
    ("val", "batch=abc", "'batch=abc' is of invalid type str"),
    ("val", "backbone_weights=imagenet", "backbone_weights= is a train argument"),
    ("predict", "imgsz=0", "'imgsz=0' is invalid"),
    ("predict", "conf=abc", "'conf=abc' is of invalid type str"),
    ("predict", "max_det=0", "'max_det' must be >= 1"),
    ("predict", "source=missing.png", "missing.png does not exist"),
    ("export", "imgsz=-32", "'imgsz=-32' is invalid"),
    ("export", "opset=abc", "'opset' must be an int"),
    ("export", "format=nonsense", "Invalid export format='nonsense'"),
]


@pytest.mark.parametrize(("mode", "argument", "expected"), BAD_ARGUMENTS, ids=[f"{m}-{a}" for m, a, _ in BAD_ARGUMENTS])
def test_bad_argument_is_one_line_with_exit_code_2(capsys, tmp_path, mode, argument, expected):
    code, _, err = run_cli(capsys, mode, "model=yolov8n-pplcnet.yaml", argument, f"project={tmp_path}")
    assert code == 2
    assert err.startswith(f"lcnet-yolo {mode}: error: ") and err.count("\n") == 1, err
    assert expected in err and "Traceback" not in err


@pytest.mark.parametrize(
    "arguments",
    [("batch=-1",), ("batch=0.7",), ("batch=16", "imgsz=[640, 480]"), ("workers=0", "patience=0", "epochs=1e2")],
    ids=["autobatch", "autobatch-fraction", "rectangular-imgsz", "zero-counts"],
)
def test_values_ultralytics_accepts_pass_the_argument_check(arguments):
    from lcnet_yolo.cli import check_arguments, parse_overrides

    check_arguments(parse_overrides(list(arguments)))  # raises on a refusal


@pytest.mark.parametrize("argument", ["data=missing.yaml", "epochs=abc"])
def test_bad_train_argument_exits_2_in_one_line_from_the_command(subprocess_env, tmp_path, argument):
    import subprocess

    proc = subprocess.run(
        [sys.executable, "-m", "lcnet_yolo", "train", argument, f"project={tmp_path}"],
        env=subprocess_env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.startswith("lcnet-yolo train: error: ") and proc.stderr.count("\n") == 1, proc.stderr
    assert argument.split("=")[1] in proc.stderr
