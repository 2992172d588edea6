"""Attacks through checkpoint files that pass a weights-only unpickler: each is refused and no code of it runs.

Every payload creates a marker file when it runs. Each test asserts that the marker is absent after every
protected path, then runs the payload without protection (positive control) to show the file is a real attack.
"""

from __future__ import annotations

import contextlib
import copy
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from ultralytics import YOLO
from ultralytics.models.yolo.detect import DetectionTrainer
from ultralytics.nn.tasks import DetectionModel

from lcnet_yolo import LCNetDetectionTrainer
from lcnet_yolo.cli import main
from lcnet_yolo.data import make_synthetic_dataset
from lcnet_yolo.io.checkpoints import load_yolo, verify_file
from lcnet_yolo.io.errors import WeightsError
from lcnet_yolo.io.safe_load import restricted_loading, safe_load
from lcnet_yolo.io.safetensors import convert
from lcnet_yolo.nn import find_backbone

TRAIN_ARGS = ("epochs=1", "imgsz=32", "batch=2", "workers=0", "device=cpu", "plots=False")


def runs_code(marker: Path) -> str:
    """A model-YAML ``activation`` that Ultralytics' ``eval`` turns into ``nn.SiLU()``, touching ``marker`` first."""
    return f"(__import__('os').system('touch {marker}'), nn.SiLU())[1]"


def evil_yaml(cfg: dict, marker: Path, variant: str) -> dict:
    """A copy of a model YAML whose build runs code: through ``activation``, or a nested model row that has it."""
    cfg = copy.deepcopy(cfg)
    cfg.pop("yaml_file", None)
    if variant == "activation":
        return {**cfg, "activation": runs_code(marker)}
    nested = {**cfg, "activation": runs_code(marker)}
    return {**cfg, "backbone": [[-1, 1, "DetectionModel", [nested]], *cfg["backbone"]]}


def one_line(message: str) -> str:
    assert "\n" not in message.strip() and "Traceback" not in message, message
    return message.strip()


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    return make_synthetic_dataset(tmp_path_factory.mktemp("tiny-data"), n_train=4, n_val=2, imgsz=32)


@pytest.fixture(params=["activation", "nested-model"])
def evil_checkpoint(request, best_pt, tmp_path) -> tuple[Path, Path, dict]:
    """A real ``best.pt`` whose networks carry a model YAML that runs code when Ultralytics builds it."""
    marker = tmp_path / "marker"
    ckpt = safe_load(best_pt)
    cfg = evil_yaml(ckpt["model"].yaml, marker, request.param)
    for key in ("model", "ema"):
        if isinstance(ckpt.get(key), torch.nn.Module):
            ckpt[key].yaml = cfg
    path = tmp_path / "shared.pt"
    torch.save(ckpt, path)
    return path, marker, cfg


# ------------------------------------------------------------------------------------- model YAML in a checkpoint
def test_a_checkpoint_whose_model_yaml_runs_code_is_refused_by_every_loader(evil_checkpoint):
    path, marker, cfg = evil_checkpoint
    field = "field 'activation'" if "activation" in cfg else "field 'backbone' row 0 names 'DetectionModel'"
    for load in (safe_load, verify_file, load_yolo, convert):
        with pytest.raises(WeightsError) as caught:
            load(path)
        message = one_line(str(caught.value))
        assert message.startswith(f"{path}: refused: the model YAML of its 'model' network {field}"), message
    assert not marker.exists()
    with contextlib.suppress(Exception):  # positive control: building that YAML the ordinary way runs the payload
        DetectionModel(copy.deepcopy(cfg), verbose=False)
    assert marker.exists()


def test_fine_tuning_or_resuming_a_checkpoint_whose_model_yaml_runs_code_is_refused(
    evil_checkpoint, tiny_data, tmp_path, capsys
):
    path, marker, _ = evil_checkpoint
    code = main(["train", f"model={path}", f"data={tiny_data}", *TRAIN_ARGS, f"project={tmp_path}", "name=cli"])
    err = one_line(capsys.readouterr().err)
    assert code == 2 and err.startswith(f"lcnet-yolo train: error: {path}: refused: the model YAML"), err

    # Python API: a YOLO object opened from the file, fine-tuned with our trainer, which checks the YAML it builds
    model = YOLO(str(path))  # the pickle itself is harmless: the payload is a string in the model YAML
    common = {"data": str(tiny_data), "epochs": 1, "imgsz": 32, "batch": 2, "workers": 0, "plots": False}
    with pytest.raises(WeightsError, match=r"refused: the model YAML of its network field"):
        model.train(trainer=LCNetDetectionTrainer, project=str(tmp_path), name="api", **common)
    with pytest.raises(WeightsError, match=r"refused: the model YAML of its 'model' network"):
        YOLO("yolov8n-pplcnet.yaml").train(trainer=LCNetDetectionTrainer, resume=str(path), **common)
    assert not marker.exists()


def test_resuming_or_pretraining_from_a_checkpoint_whose_pickle_runs_code_is_refused_before_it_runs(
    tiny_data, tmp_path, capsys
):
    marker = tmp_path / "marker"

    class RunsShell:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    last = tmp_path / "last.pt"
    torch.save({"model": RunsShell(), "epoch": 0, "optimizer": {}}, last)
    common = {"data": str(tiny_data), "epochs": 2, "imgsz": 32, "batch": 2, "workers": 0, "project": str(tmp_path)}
    with pytest.raises(WeightsError, match=r"refused to load: its pickle references posix\.system"):
        YOLO("yolov8n-pplcnet.yaml").train(trainer=LCNetDetectionTrainer, resume=str(last), **common)
    with pytest.raises(WeightsError, match=r"refused to load"):
        LCNetDetectionTrainer(overrides={"model": str(last), "resume": str(last), **common})
    with pytest.raises(WeightsError, match=r"refused to load"):
        LCNetDetectionTrainer(overrides={"model": "yolov8n-pplcnet.yaml", "pretrained": str(last), **common})
    args = ["train", "model=yolov8n-pplcnet.yaml", f"pretrained={last}", f"data={tiny_data}", *TRAIN_ARGS]
    assert main([*args, f"project={tmp_path}"]) == 2
    err = one_line(capsys.readouterr().err)
    assert err.startswith(f"lcnet-yolo train: error: {last}: refused to load: its pickle references posix.system")
    assert not marker.exists()
    with pytest.raises(FileNotFoundError):  # positive control: Ultralytics' own trainer unpickles it to resume
        DetectionTrainer(overrides={"model": str(last), "resume": str(last), **common})
    assert marker.exists()
    marker.unlink()
    trainer = DetectionTrainer(overrides={"model": "yolov8n-pplcnet.yaml", "pretrained": str(last), **common})
    with pytest.raises(TypeError):  # ... and to take its weights as pretrained=
        trainer.setup_model()
    assert marker.exists()


# --------------------------------------------------------------------------- backbone weights holding a model
@pytest.fixture
def evil_backbone(best_pt, tmp_path) -> tuple[Path, Path]:
    """A backbone state dict plus a pickled ``DetectionModel(cfg)`` call whose cfg runs code when built."""
    marker = tmp_path / "marker"
    model = safe_load(best_pt)["model"].float()
    cfg = evil_yaml(model.yaml, marker, "activation")

    class BuildsModel:
        def __reduce__(self):
            return DetectionModel, (cfg,)

    path = tmp_path / "backbone.pt"
    torch.save({"state_dict": find_backbone(model).state_dict(), "meta": BuildsModel()}, path)
    return path, marker


BACKBONE_SCRIPT = """
import os, sys
import torch
import lcnet_yolo
from ultralytics import YOLO
from ultralytics.nn.tasks import torch_safe_load
from lcnet_yolo.io.checkpoints import load_yolo
from lcnet_yolo.io.safe_load import allow_our_classes, safe_load
from lcnet_yolo.io.weights import WeightsError, load_pretrained
from lcnet_yolo.nn import find_backbone

best, evil, marker, order = sys.argv[1:5]
backbone = find_backbone(YOLO("yolov8n-pplcnet.yaml").model)
allowed_at_start = set(map(repr, torch.serialization.get_safe_globals()))

def attempt(when):
    try:
        load_pretrained(backbone, evil)
        print(when, "LOADED")
    except WeightsError as error:
        print(when, "REFUSED", str(error))

if order == "safe-load-first":
    safe_load(best), load_yolo(best)
attempt("first")
if order == "load-first":
    safe_load(best), load_yolo(best)
attempt("second")
print("ALLOW-LIST RESTORED", set(map(repr, torch.serialization.get_safe_globals())) == allowed_at_start)
allow_our_classes()
torch_safe_load(best, safe_only=True)  # Ultralytics' own safe mode allows DetectionModel for the whole process
attempt("after-ultralytics-safe-mode")
print("MARKER", os.path.exists(marker))
try:  # positive control: a plain weights-only load in this process now builds the model and runs the payload
    torch.load(evil, weights_only=True)
except Exception as error:
    print("CONTROL RAISED", type(error).__name__)
print("CONTROL MARKER", os.path.exists(marker))
"""


@pytest.mark.parametrize("order", ["load-first", "safe-load-first"])
def test_backbone_weights_holding_a_pickled_model_are_refused_whatever_was_loaded_before(
    evil_backbone, best_pt, subprocess_env, order
):
    evil, marker = evil_backbone
    proc = subprocess.run(
        [sys.executable, "-c", BACKBONE_SCRIPT, str(best_pt), str(evil), str(marker), order],
        env=subprocess_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = {line.split(" ", 1)[0]: line for line in proc.stdout.splitlines()}
    for when in ("first", "second", "after-ultralytics-safe-mode"):
        assert lines[when] == (
            f"{when} REFUSED refusing to load {evil}: it holds pickled Python objects, not only tensors and plain "
            "containers (its pickle asks for ultralytics.nn.tasks.DetectionModel; nothing was executed)"
        )
    assert "ALLOW-LIST RESTORED True" in proc.stdout
    assert "MARKER False" in proc.stdout
    assert "CONTROL MARKER True" in proc.stdout, proc.stdout


@pytest.mark.parametrize("model", ["best.pt", "yolov8n-pplcnet.yaml"])
def test_backbone_weights_holding_a_pickled_model_are_refused_through_the_cli(
    evil_backbone, best_pt, tiny_data, tmp_path, subprocess_env, model
):
    evil, marker = evil_backbone
    model = str(best_pt) if model == "best.pt" else model  # best.pt: a checkpoint is safe-loaded first
    args = [f"model={model}", f"data={tiny_data}", f"backbone_weights={evil}", *TRAIN_ARGS, f"project={tmp_path}"]
    proc = subprocess.run(
        [sys.executable, "-m", "lcnet_yolo", "train", *args],
        env=subprocess_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    last_line = proc.stderr.strip().splitlines()[-1]
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert last_line.startswith(f"lcnet-yolo train: error: refusing to load {evil}: it holds pickled"), last_line
    assert "Traceback" not in proc.stderr
    assert not marker.exists()


# --------------------------------------------------------------------------------------- the scoped allow-list
def test_loaders_leave_torch_allow_list_as_they_found_it_and_scope_our_classes(best_pt):
    from lcnet_yolo.nn import module_classes

    before = torch.serialization.get_safe_globals()
    safe_load(best_pt)
    load_yolo(best_pt)
    verify_file(best_pt)
    assert set(map(repr, torch.serialization.get_safe_globals())) == set(map(repr, before))
    with restricted_loading():
        inside = torch.serialization.get_safe_globals()
    assert set(inside) == set(module_classes())
    assert set(map(repr, torch.serialization.get_safe_globals())) == set(map(repr, before))
