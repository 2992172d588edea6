"""PP-LCNet as an Ultralytics classifier: packaged YAMLs for the eight scales, PaddleClas head, one-epoch training."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from ultralytics import YOLO

from lcnet_yolo import LCNetClassificationTrainer
from lcnet_yolo.nn import SCALES, PPLCNet, find_backbone
from lcnet_yolo.nn.layers import Classifier


def scale_tag(scale: float) -> str:
    return f"{scale:.2f}".rstrip("0").replace(".", "_") if scale % 1 else f"{scale:.1f}".replace(".", "_")


@pytest.mark.parametrize("scale", list(SCALES))
def test_each_scale_builds_as_a_classify_model_with_the_papers_parameter_count(scale):
    model = YOLO(f"pplcnet_x{scale_tag(scale)}-cls.yaml")
    assert model.task == "classify"
    params = sum(p.numel() for p in model.model.parameters()) / 1e6
    assert math.isclose(params, SCALES[scale][0], abs_tol=0.06), params  # paper: params in M, one decimal


def test_head_is_paddleclas_not_ultralytics_classify():
    head = YOLO("pplcnet_x1_0-cls.yaml").model.model[-1]
    assert isinstance(head, Classifier)
    assert isinstance(head.last_conv, nn.Conv2d) and head.last_conv.bias is None
    assert (head.last_conv.in_channels, head.last_conv.out_channels) == (512, 1280)
    assert isinstance(head.act, nn.Hardswish) and isinstance(head.drop, nn.Dropout) and head.drop.p == 0.2
    assert head.linear is head.fc and head.fc.out_features == 1000


def make_image_folder(root: Path, classes: int = 2, per_class: int = 8, size: int = 32) -> Path:
    """Train/val ImageFolder whose classes differ in colour."""
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for c in range(classes):
            folder = root / split / f"class{c}"
            folder.mkdir(parents=True)
            for i in range(per_class):
                base = np.full((size, size, 3), 60 + 150 * c, np.uint8)
                noise = rng.integers(0, 40, (size, size, 3), dtype=np.uint8)
                Image.fromarray(base + noise).save(folder / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory) -> Path:
    return make_image_folder(tmp_path_factory.mktemp("imagefolder"))


def test_classification_trainer_starts_the_backbone_from_pplcnet_weights(image_folder, tmp_path):
    torch.manual_seed(3)
    state = PPLCNet(scale=0.25).state_dict()
    torch.save(state, tmp_path / "x0_25.pt")
    trainer = LCNetClassificationTrainer(
        overrides={
            "model": "pplcnet_x0_25-cls.yaml",
            "data": str(image_folder),
            "imgsz": 32,
            "device": "cpu",
            "project": str(tmp_path),
            "backbone_weights": str(tmp_path / "x0_25.pt"),
        }
    )
    backbone = find_backbone(trainer.model)
    for key, value in backbone.state_dict().items():
        torch.testing.assert_close(value, state[key], rtol=0, atol=0, msg=key)
    assert trainer.model.model[-1].fc.out_features == 2


@pytest.mark.slow
def test_one_epoch_on_a_tiny_image_folder_reports_finite_loss_and_top1(image_folder, tmp_path):
    data = image_folder
    model = YOLO("pplcnet_x0_25-cls.yaml")
    metrics = model.train(
        data=str(data),
        epochs=1,
        imgsz=32,
        batch=4,
        workers=0,
        device="cpu",
        project=str(tmp_path),
        name="cls",
        plots=False,
    )
    with open(tmp_path / "cls" / "results.csv") as f:
        row = next(csv.DictReader(f))
    assert np.isfinite(float(row["train/loss"])) and float(row["train/loss"]) > 0
    assert 0.0 <= metrics.top1 <= 1.0 and "metrics/accuracy_top1" in metrics.results_dict
    head = YOLO(Path(model.trainer.best)).model.model[-1]
    assert isinstance(head, Classifier) and head.fc.out_features == 2  # nc reset to the dataset's classes
