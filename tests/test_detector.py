"""YOLOv8 with a PP-LCNet backbone through Ultralytics: building, weights, checkpoints, resume, DDP, offline."""

from __future__ import annotations

import copy
import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from ultralytics import YOLO
from ultralytics.nn.modules import Detect
from ultralytics.utils.torch_utils import get_flops

from conftest import BAD_SAMPLES, EMPTY_LABEL_SAMPLE
from lcnet_yolo import LCNetDetectionTrainer
from lcnet_yolo.data import make_synthetic_dataset
from lcnet_yolo.nn import SCALES, PPLCNet, find_backbone
from lcnet_yolo.nn.layers import BatchNorm2d
from lcnet_yolo.plugin.register import packaged_models

# PP-LCNet width per YOLOv8 scale: its blocks4/5/6 channels match YOLOv8's P3/P4/P5 (see the YAML headers).
BACKBONE_SCALE = {"n": 0.5, "s": 1.0, "m": 1.5, "l": 2.0, "x": 2.5}


def detect_input_channels(model: nn.Module) -> list[int]:
    head = model.model[-1]
    assert isinstance(head, Detect)
    return [branch[0].conv.in_channels for branch in head.cv2]


@pytest.mark.slow
@pytest.mark.parametrize("scale", list("nsmlx"))
def test_each_scale_has_yolov8_neck_channels_and_its_pplcnet_width(scale):
    ours = YOLO(f"yolov8{scale}-pplcnet.yaml").model
    reference = YOLO(f"yolov8{scale}.yaml").model
    assert find_backbone(ours).scale == BACKBONE_SCALE[scale]
    assert detect_input_channels(ours) == detect_input_channels(reference)
    assert ours.stride.tolist() == [8.0, 16.0, 32.0]
    assert get_flops(ours, 640) > 0
    with torch.no_grad():
        raw = ours.eval()(torch.zeros(1, 3, 64, 64))[0]
    assert raw.shape == (1, 4 + 80, 8 * 8 + 4 * 4 + 2 * 2)


def test_model_info_reports_parameters_and_nonzero_gflops():
    layers, params, _, gflops = YOLO("yolov8n-pplcnet.yaml").info()
    assert layers > 0 and params == sum(p.numel() for p in YOLO("yolov8n-pplcnet.yaml").model.parameters())
    assert gflops > 0


def test_plain_n_model_is_yolov8n_with_only_the_backbone_swapped():
    plain = YOLO("yolov8n-pplcnet-plain.yaml").model
    reference = YOLO("yolov8n.yaml").model
    assert find_backbone(plain).scale == 0.5
    neck = [type(m).__name__ for m in plain.model[4:]]
    assert neck == [type(m).__name__ for m in reference.model[9:]]
    assert sum(p.numel() for p in plain.model[4:].parameters()) == sum(
        p.numel() for p in reference.model[9:].parameters()
    )


def test_packaged_yamls_cover_five_detector_scales_and_eight_classifiers():
    names = packaged_models()
    for scale in "nsmlx":
        assert f"yolov8{scale}-pplcnet.yaml" in names
    assert "yolov8n-pplcnet-plain.yaml" in names
    assert sum(name.endswith("-cls.yaml") for name in names) == 8


@pytest.mark.slow
@pytest.mark.parametrize("name", packaged_models())
def test_every_packaged_model_builds_with_a_pplcnet_backbone_and_runs(name):
    model = YOLO(name).model.eval()
    assert find_backbone(model).scale in SCALES
    with torch.no_grad():
        out = model(torch.zeros(1, 3, 64, 64))
    if name.endswith("-cls.yaml"):
        assert model.task == "classify" and out[0].shape == (1, 1000)
        assert torch.allclose(out[0].sum(1), torch.ones(1))  # softmax in eval
    else:
        assert model.task == "detect" and model.stride.tolist() == [8.0, 16.0, 32.0]
        assert out[0].shape[:2] == (1, 4 + 80)


def test_unknown_model_name_lists_the_packaged_models():
    with pytest.raises(FileNotFoundError) as error:
        YOLO("yolov8q-pplcnet.yaml")
    assert "yolov8n-pplcnet.yaml" in str(error.value)
    assert "pplcnet_x1_0-cls.yaml" in str(error.value)


def test_backbone_batchnorm_keeps_eps_1e5_through_ultralytics_initialisation():
    model = YOLO("yolov8n-pplcnet.yaml").model
    backbone_norms = [m for m in find_backbone(model).modules() if isinstance(m, nn.BatchNorm2d)]
    neck_norms = [m for m in model.model[1:].modules() if isinstance(m, nn.BatchNorm2d)]
    assert backbone_norms and all(type(m) is BatchNorm2d and m.eps == 1e-5 for m in backbone_norms)
    assert neck_norms and all(m.eps == 1e-3 for m in neck_norms)  # Ultralytics' own setting for its layers


def test_ultralytics_fuse_folds_the_backbone_batchnorms_without_changing_outputs():
    model = YOLO("yolov8n-pplcnet.yaml").model.eval()
    generator = torch.Generator().manual_seed(0)
    for m in model.modules():  # non-trivial statistics, otherwise folding is an identity
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=generator) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=generator) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=generator) + 0.5)
    x = torch.rand(2, 3, 96, 96, generator=generator)
    with torch.no_grad():
        before = model(x)[0]
        fused = copy.deepcopy(model).fuse(verbose=False)
        after = fused(x)[0]
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fused.modules())
    assert torch.allclose(before, after, rtol=1e-4, atol=1e-3), (before - after).abs().max()


@pytest.fixture(scope="module")
def synthetic_data(tmp_path_factory) -> str:
    return str(make_synthetic_dataset(tmp_path_factory.mktemp("synthetic"), n_train=8, n_val=4, imgsz=64))


def write_random_pplcnet_checkpoint(path: Path, scale: float) -> dict[str, torch.Tensor]:
    """A PP-LCNet ImageNet-style checkpoint (classifier included) with random weights and BN statistics."""
    torch.manual_seed(1)
    network = PPLCNet(scale=scale)
    state = {k: torch.randn_like(v) if v.is_floating_point() else v for k, v in network.state_dict().items()}
    for key in state:
        if key.endswith("running_var"):
            state[key] = state[key].abs() + 0.5
    torch.save(state, path)
    return state


def test_trainer_starts_the_backbone_from_pplcnet_weights_with_bn_eps_1e5(tmp_path, synthetic_data):
    pytest.importorskip("lcnet_yolo.io.weights")
    state = write_random_pplcnet_checkpoint(tmp_path / "pplcnet_x0_5.pt", 0.5)
    overrides = {"model": "yolov8n-pplcnet.yaml", "data": synthetic_data, "imgsz": 64, "device": "cpu"}
    trainer = LCNetDetectionTrainer(
        overrides={**overrides, "project": str(tmp_path), "backbone_weights": str(tmp_path / "pplcnet_x0_5.pt")}
    )
    backbone = find_backbone(trainer.model)
    loaded = backbone.state_dict()
    assert set(loaded) <= set(state)
    for key, value in loaded.items():
        torch.testing.assert_close(value, state[key], rtol=0, atol=0, msg=key)
    assert all(m.eps == 1e-5 for m in backbone.modules() if isinstance(m, nn.BatchNorm2d))
    assert trainer.setup_model() is None and trainer.model is not None  # Ultralytics keeps the prepared model


def test_backbone_weights_of_another_scale_fail_with_one_clear_message(tmp_path, synthetic_data):
    pytest.importorskip("lcnet_yolo.io.weights")
    write_random_pplcnet_checkpoint(tmp_path / "pplcnet_x1_0.pt", 1.0)
    overrides = {"model": "yolov8n-pplcnet.yaml", "data": synthetic_data, "imgsz": 64, "device": "cpu"}
    with pytest.raises(ValueError, match=r"(?i)scale|shape|x1"):
        LCNetDetectionTrainer(
            overrides={**overrides, "project": str(tmp_path), "backbone_weights": str(tmp_path / "pplcnet_x1_0.pt")}
        )


def test_best_pt_reloads_in_a_fresh_process_with_only_import_lcnet_yolo(best_pt, subprocess_env):
    script = (
        "import sys, numpy as np, lcnet_yolo\n"
        "from ultralytics import YOLO\n"
        "model = YOLO(sys.argv[1])\n"
        "result = model.predict(np.zeros((64, 64, 3), np.uint8), imgsz=64, device='cpu', verbose=False)[0]\n"
        "print('OK', model.task, type(model.model.model[0]).__name__, result.boxes.data.shape[1])\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, str(best_pt)], env=subprocess_env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "OK detect PPLCNetBackbone 6" in proc.stdout


class StopAfterFirstEpoch(Exception):
    pass


@pytest.mark.slow
def test_interrupted_training_resumes_to_the_last_epoch(tmp_path, synthetic_data):
    def interrupt(trainer):
        if trainer.epoch == 0:
            raise StopAfterFirstEpoch

    model = YOLO("yolov8n-pplcnet.yaml")
    model.add_callback("on_model_save", interrupt)
    args = {"data": synthetic_data, "imgsz": 64, "batch": 4, "workers": 0, "device": "cpu", "plots": False}
    with pytest.raises(StopAfterFirstEpoch):
        model.train(epochs=2, project=str(tmp_path), name="run", trainer=LCNetDetectionTrainer, **args)
    last = tmp_path / "run" / "weights" / "last.pt"
    checkpoint = torch.load(last, weights_only=False)
    assert checkpoint["epoch"] == 0 and checkpoint["optimizer"] is not None

    YOLO(last).train(resume=True, trainer=LCNetDetectionTrainer)
    with open(tmp_path / "run" / "results.csv") as f:
        epochs = [int(float(row["epoch"])) for row in csv.DictReader(f)]
    assert epochs == [1, 2]
    resumed = torch.load(last, weights_only=False)["model"]
    assert all(m.eps == 1e-5 for m in find_backbone(resumed).modules() if isinstance(m, nn.BatchNorm2d))


@pytest.mark.parametrize("with_backbone_weights", [False, True], ids=["from-yaml", "with-backbone-weights"])
def test_ddp_worker_script_imports_lcnet_yolo_and_builds_our_model(
    tmp_path, synthetic_data, subprocess_env, with_backbone_weights
):
    from ultralytics.utils.dist import generate_ddp_file

    overrides = {"model": "yolov8n-pplcnet.yaml", "data": synthetic_data, "imgsz": 64, "device": "cpu"}
    if with_backbone_weights:
        state = write_random_pplcnet_checkpoint(tmp_path / "x0_5.pt", 0.5)
        overrides["backbone_weights"] = str(tmp_path / "x0_5.pt")
    trainer = LCNetDetectionTrainer(overrides={**overrides, "project": str(tmp_path)})
    script = Path(generate_ddp_file(trainer))
    try:
        text = script.read_text()
        assert "    trainer.train()" in text
        build_only = (
            "    trainer.setup_model()\n"
            "    import sys\n"
            "    from lcnet_yolo.nn import find_backbone\n"
            "    weight = find_backbone(trainer.model).conv1.conv.weight\n"
            "    print('BUILT', type(trainer).__name__, 'lcnet_yolo' in sys.modules, float(weight.double().sum()))\n"
        )
        (tmp_path / "ddp_worker.py").write_text(text.replace("    trainer.train()\n", build_only))
        env = {k: v for k, v in subprocess_env.items() if k != "PYTHONPATH"}  # the script carries sys.path itself
        proc = subprocess.run(
            [sys.executable, str(tmp_path / "ddp_worker.py")], env=env, capture_output=True, text=True, timeout=120
        )
    finally:
        script.unlink(missing_ok=True)
        script.with_suffix(".pt").unlink(missing_ok=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    built = proc.stdout.split("BUILT ", 1)[1].split()
    assert built[:2] == ["LCNetDetectionTrainer", "True"]
    if with_backbone_weights:  # the worker trains from the loaded backbone, not a fresh one
        assert float(built[2]) == pytest.approx(float(state["conv1.conv.weight"].double().sum()), abs=1e-9)


def test_training_runs_offline_without_any_network_attempt(offline_training):
    assert offline_training["attempts"] == []
    assert (offline_training["config_dir"] / "Ultralytics" / "Arial.ttf").is_file()  # plot font from matplotlib
    assert (offline_training["run_dir"] / "results.png").is_file()
    assert "attempting AutoUpdate" not in offline_training["log"]  # no pip install at run time


def test_training_skips_undecodable_images_and_bad_labels_and_goes_on(offline_training):
    cache = Path(offline_training["data"]).parent / "labels" / "train.cache"
    scan = np.load(str(cache), allow_pickle=True).item()
    found, _missing, empty, corrupt, total = scan["results"]
    assert (found, empty, corrupt, total) == (8, 1, len(BAD_SAMPLES), 9)
    messages = "\n".join(scan["msgs"])
    for stem in BAD_SAMPLES:
        assert f"{stem}.png: ignoring corrupt image/label" in messages
    assert "exceeds dataset class count" in messages and "out of bounds coordinates" in messages
    assert EMPTY_LABEL_SAMPLE not in messages
    assert Path(offline_training["best"]).is_file()


def test_runs_never_overwrite_existing_results(offline_training, best_pt, tmp_path):
    model = YOLO(best_pt)
    data = offline_training["data"]
    args = {"data": data, "imgsz": 64, "batch": 4, "device": "cpu", "project": str(tmp_path), "name": "val"}
    first = Path(model.val(**args).save_dir)
    written = {p: p.stat().st_mtime_ns for p in first.iterdir()}
    second = Path(model.val(**args).save_dir)
    assert first.name == "val" and second != first and second.parent == first.parent
    assert written and {p: p.stat().st_mtime_ns for p in first.iterdir()} == written
