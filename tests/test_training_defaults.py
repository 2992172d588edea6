"""Defaults that train: the init of depthwise filters and the trainer's nominal batch on small datasets."""

from __future__ import annotations

import csv
import logging
import math
from pathlib import Path

import pytest
import torch
from ultralytics.utils import LOGGER

from lcnet_yolo.data import make_synthetic_dataset
from lcnet_yolo.integration import (
    MIN_STEPS_PER_EPOCH,
    LCNetDetectionTrainer,
    small_dataset_accumulate,
    user_set_keys,
)
from lcnet_yolo.nn.pplcnet import REFERENCE_FAN_IN, ConvBNAct, PPLCNet, scale_init_for_adam

DEFAULTS_LINE = "lcnet-yolo defaults:"


class LogLines(logging.Handler):
    """Collects the messages of Ultralytics' logger."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())

    def __enter__(self) -> LogLines:
        LOGGER.addHandler(self)
        return self

    def __exit__(self, *exc) -> None:
        LOGGER.removeHandler(self)


def filter_norms(conv: torch.nn.Conv2d) -> torch.Tensor:
    return conv.weight.detach().flatten(1).norm(dim=1)


def test_depthwise_and_stem_start_at_reference_weight_scale():
    torch.manual_seed(0)
    net = PPLCNet(scale=1.0, features_only=True)
    dw3 = net.blocks2[0].dw_conv.conv  # 3x3 depthwise, fan-in 9
    dw5 = net.blocks6[0].dw_conv.conv  # 5x5 depthwise, fan-in 25
    pw = net.blocks6[0].pw_conv.conv  # pointwise, fan-in 256: PyTorch's default
    stem = net.conv1.conv  # 3x3 over RGB, fan-in 27
    reference_std = 1 / math.sqrt(3 * REFERENCE_FAN_IN)  # PyTorch's default std for fan-in 576
    for conv in (dw3, dw5, stem):
        assert conv.weight.std().item() == pytest.approx(reference_std, rel=0.15)
    assert pw.weight.std().item() == pytest.approx(1 / math.sqrt(3 * 256), rel=0.1)
    assert filter_norms(dw3).mean().item() == pytest.approx(math.sqrt(9 / (3 * REFERENCE_FAN_IN)), rel=0.2)


def test_scaled_init_keeps_the_batchnorm_output():
    torch.manual_seed(1)
    unit = ConvBNAct(16, 16, 3, groups=16, adam_init=False)
    unit.bn.eps = 1e-9  # BatchNorm is scale-invariant up to its eps
    x = torch.randn(4, 16, 12, 12)
    before = unit(x)
    scale_init_for_adam(unit.conv)
    assert filter_norms(unit.conv).mean().item() == pytest.approx(math.sqrt(9 / (3 * REFERENCE_FAN_IN)), rel=0.3)
    assert torch.allclose(unit(x), before, atol=1e-4), (unit(x) - before).abs().max()


def relative_adam_step(unit: ConvBNAct, lr: float = 0.002) -> float:
    """Mean ||dw|| / ||w|| per filter after one AdamW step on a random regression target."""
    x = torch.randn(8, unit.conv.in_channels, 16, 16, generator=torch.Generator().manual_seed(2))
    target = torch.randn_like(unit(x))
    before = unit.conv.weight.detach().clone()
    optimizer = torch.optim.AdamW(unit.parameters(), lr=lr, weight_decay=0.0)
    ((unit(x) - target) ** 2).mean().backward()
    optimizer.step()
    return ((unit.conv.weight.detach() - before).flatten(1).norm(dim=1) / before.flatten(1).norm(dim=1)).mean().item()


def test_adam_turns_depthwise_filters_as_fast_as_dense_ones():
    torch.manual_seed(3)
    dense = relative_adam_step(ConvBNAct(64, 64, 3))
    depthwise = relative_adam_step(ConvBNAct(64, 64, 3, groups=64))
    default_init = relative_adam_step(ConvBNAct(64, 64, 3, groups=64, adam_init=False))
    assert 0.7 < depthwise / dense < 1.4, (depthwise, dense)
    assert default_init / dense < 0.2, (default_init, dense)  # PyTorch's default init: about 8x slower


@pytest.mark.parametrize(
    ("batches", "nominal", "expected"),
    [(7, 16, 1), (4, 16, 1), (15, 16, 1), (16, 16, 2), (63, 4, 4), (200, 16, 16), (1000, 1, 1)],
)
def test_small_dataset_accumulate(batches, nominal, expected):
    accumulate = small_dataset_accumulate(batches, nominal)
    assert accumulate == expected
    assert batches // accumulate >= min(MIN_STEPS_PER_EPOCH, batches) or accumulate == nominal


def test_user_set_keys_counts_overrides_and_custom_cfg_values():
    from ultralytics.cfg import get_cfg

    assert user_set_keys(None, {"nbs": 64, "data": "x.yaml"}) == {"nbs", "data"}
    cfg = vars(get_cfg())
    cfg["lr0"] = 0.05  # a custom cfg with every key: only values that differ from Ultralytics' count
    assert user_set_keys(cfg, {"epochs": 3}) == {"epochs", "lr0"}


@pytest.fixture(scope="module")
def synthetic_data(tmp_path_factory) -> Path:
    return make_synthetic_dataset(tmp_path_factory.mktemp("defaults-data"), n_train=16, n_val=8, imgsz=64)


def setup_trainer(data: Path, project: Path, **overrides) -> tuple[LCNetDetectionTrainer, list[str]]:
    """A trainer set up as for training (model, data loaders, optimizer), and the log lines of its setup."""
    args = dict(model="yolov8n-pplcnet.yaml", data=str(data), epochs=10, imgsz=64, batch=4, workers=0)
    trainer = LCNetDetectionTrainer(overrides={**args, "project": str(project), **overrides})
    with LogLines() as log:
        trainer._setup_train()
    return trainer, log.lines


def test_defaults_choose_one_step_per_batch_and_say_so(synthetic_data, tmp_path):
    trainer, lines = setup_trainer(synthetic_data, tmp_path)
    assert len(trainer.train_loader) == 4
    assert (trainer.args.nbs, trainer.accumulate, trainer.applied_defaults) == (4, 1, {"nbs": 4})
    assert (trainer.args.optimizer, trainer.args.lr0) == ("AdamW", 0.002)  # Ultralytics' automatic choice
    weight_group = next(g for g in trainer.optimizer.param_groups if g.get("param_group") == "weight")
    assert weight_group["weight_decay"] == pytest.approx(0.0005)  # Ultralytics' scaling, batch*accumulate/nbs = 1
    ours = [line for line in lines if DEFAULTS_LINE in line]
    assert len(ours) == 1
    assert "nbs=4 (an optimizer step every 1 batch): 16 training images make 4 batches of 4 per epoch" in ours[0]
    assert "Ultralytics' nbs=64 would step every 16 batches (0.2 steps per epoch); pass nbs=" in ours[0]


@pytest.mark.parametrize("nbs", [64, 4])
def test_user_set_nbs_wins(synthetic_data, tmp_path, nbs):
    trainer, lines = setup_trainer(synthetic_data, tmp_path, nbs=nbs, optimizer="SGD", lr0=0.03)
    assert (trainer.args.nbs, trainer.accumulate) == (nbs, nbs // 4)
    assert (trainer.args.optimizer, trainer.args.lr0, trainer.optimizer.param_groups[0]["lr"]) == ("SGD", 0.03, 0.03)
    assert trainer.applied_defaults == {}
    assert not [line for line in lines if DEFAULTS_LINE in line]


def results_rows(csv_path: Path) -> list[dict[str, float]]:
    with open(csv_path) as f:
        return [{k.strip(): float(v) for k, v in row.items()} for row in csv.DictReader(f)]


@pytest.mark.slow
def test_short_default_run_learns_and_ultralytics_nominal_batch_does_not(synthetic_data, tmp_path):
    """10 epochs on 16 images with defaults only: the class loss falls; with Ultralytics' nbs=64 it stays flat."""
    from ultralytics import YOLO

    losses = {}
    for name, extra in (("defaults", {}), ("nbs64", {"nbs": 64})):
        model = YOLO("yolov8n-pplcnet.yaml")
        args = dict(data=str(synthetic_data), epochs=10, imgsz=64, batch=4, workers=0, plots=False, seed=0)
        model.train(trainer=LCNetDetectionTrainer, project=str(tmp_path), name=name, **args, **extra)
        rows = results_rows(model.trainer.csv)
        assert len(rows) == 10
        losses[name] = rows
    first, last = losses["defaults"][0], losses["defaults"][-1]
    assert last["train/cls_loss"] < 0.85 * first["train/cls_loss"], (first, last)
    assert last["val/cls_loss"] < first["val/cls_loss"] - 0.01, (first, last)
    flat_first, flat_last = losses["nbs64"][0], losses["nbs64"][-1]
    assert flat_last["train/cls_loss"] > 0.95 * flat_first["train/cls_loss"], (flat_first, flat_last)
