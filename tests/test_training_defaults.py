"""Defaults that train: what our trainers apply when the user leaves nbs/optimizer unset, and that it trains."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import pytest
from ultralytics.utils import LOGGER, YAML

from lcnet_yolo.data import make_synthetic_dataset
from lcnet_yolo.plugin.trainers import (
    MIN_STEPS_PER_EPOCH,
    LCNetDetectionTrainer,
    small_dataset_accumulate,
    user_set_keys,
)

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


def setup_trainer(
    data: Path, project: Path, model: str = "yolov8n-pplcnet.yaml", **overrides
) -> tuple[LCNetDetectionTrainer, list[str]]:
    """A trainer set up as for training (model, data loaders, optimizer), and the log lines of its setup."""
    args = dict(model=model, data=str(data), epochs=10, imgsz=64, batch=4, workers=0)
    trainer = LCNetDetectionTrainer(overrides={**args, "project": str(project), **overrides})
    with LogLines() as log:
        trainer._setup_train()
    return trainer, log.lines


def test_defaults_step_every_batch_with_adamw_at_lr0_001_and_say_why(synthetic_data, tmp_path):
    trainer, lines = setup_trainer(synthetic_data, tmp_path)
    assert len(trainer.train_loader) == 4
    assert (trainer.args.nbs, trainer.accumulate) == (4, 1)
    assert trainer.applied_defaults == {"nbs": 4, "optimizer": "AdamW", "lr0": 0.01}
    assert type(trainer.optimizer).__name__ == "AdamW"
    weight_group = next(g for g in trainer.optimizer.param_groups if g.get("param_group") == "weight")
    assert weight_group["lr"] == pytest.approx(0.01)
    assert weight_group["betas"] == (0.937, 0.999)  # the explicit recipe's momentum, not auto's 0.9
    assert weight_group["weight_decay"] == pytest.approx(0.0005)  # Ultralytics' scaling, batch*accumulate/nbs = 1
    assert trainer.args.warmup_bias_lr == 0.1
    saved = YAML.load(trainer.save_dir / "args.yaml")  # the run's record shows what was used
    assert (saved["nbs"], saved["optimizer"], saved["lr0"]) == (4, "AdamW", 0.01)
    ours = [line for line in lines if DEFAULTS_LINE in line]
    assert len(ours) == 1
    assert ours[0].endswith(trainer.defaults_line.removeprefix(DEFAULTS_LINE))  # logged as recorded
    assert "optimizer=AdamW lr0=0.01 nbs=4 accumulate=1; applied nbs=4" in ours[0]  # the decision, then why
    assert "nbs=4 (an optimizer step every 1 batch): 16 training images make 4 batches of 4 per epoch" in ours[0]
    assert "Ultralytics' nbs=64 would step every 16 batches (0.2 steps per epoch)" in ours[0]
    assert "optimizer=AdamW lr0=0.01: PP-LCNet detectors" in ours[0]
    assert "Ultralytics' automatic choice (AdamW, lr0 0.002 here)" in ours[0]


@pytest.mark.parametrize("nbs", [64, 4])
def test_user_set_values_win(synthetic_data, tmp_path, nbs):
    trainer, lines = setup_trainer(synthetic_data, tmp_path, nbs=nbs, optimizer="SGD", lr0=0.03)
    assert (trainer.args.nbs, trainer.accumulate) == (nbs, nbs // 4)
    assert (trainer.args.optimizer, trainer.args.lr0, trainer.optimizer.param_groups[0]["lr"]) == ("SGD", 0.03, 0.03)
    assert trainer.applied_defaults == {}
    ours = [line for line in lines if DEFAULTS_LINE in line]
    assert len(ours) == 1 and f"optimizer=SGD lr0=0.03 nbs={nbs} accumulate={nbs // 4}; none applied" in ours[0]


def test_user_lr0_is_kept_and_explicit_auto_is_ultralytics(synthetic_data, tmp_path):
    trainer, lines = setup_trainer(synthetic_data, tmp_path, lr0=0.004)
    assert trainer.applied_defaults == {"nbs": 4, "optimizer": "AdamW", "lr0": 0.004}
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(0.004)
    assert "optimizer=AdamW lr0=0.004:" in next(line for line in lines if DEFAULTS_LINE in line)
    trainer, lines = setup_trainer(synthetic_data, tmp_path, optimizer="auto")
    assert trainer.applied_defaults == {"nbs": 4}
    assert (trainer.args.optimizer, trainer.args.lr0) == ("AdamW", 0.002)  # Ultralytics' automatic choice


def test_models_without_pplcnet_get_only_the_nominal_batch(synthetic_data, tmp_path):
    trainer, lines = setup_trainer(synthetic_data, tmp_path, model="yolov8n.yaml")
    assert trainer.applied_defaults == {"nbs": 4}
    assert (trainer.args.optimizer, trainer.args.lr0) == ("AdamW", 0.002)
    line = next(line for line in lines if DEFAULTS_LINE in line)
    assert "optimizer=AdamW lr0=0.002 nbs=4 accumulate=1; applied nbs=4" in line and "PP-LCNet" not in line


def results_rows(csv_path: Path) -> list[dict[str, float]]:
    with open(csv_path) as f:
        return [{k.strip(): float(v) for k, v in row.items()} for row in csv.DictReader(f)]


@pytest.mark.slow
def test_short_default_run_learns_where_ultralytics_choices_do_not(synthetic_data, tmp_path):
    """10 epochs on 16 images, defaults only: losses fall and mAP50 leaves zero. With Ultralytics' own choices
    (nbs 64, automatic optimizer) the class loss stays flat."""
    from ultralytics import YOLO

    runs = {}
    for name, extra in (("defaults", {}), ("ultralytics", {"nbs": 64, "optimizer": "auto"})):
        model = YOLO("yolov8n-pplcnet.yaml")
        args = dict(data=str(synthetic_data), epochs=10, imgsz=64, batch=4, workers=0, plots=False, seed=0)
        model.train(trainer=LCNetDetectionTrainer, project=str(tmp_path), name=name, **args, **extra)
        rows = results_rows(model.trainer.csv)
        assert len(rows) == 10
        runs[name] = rows
    first, last = runs["defaults"][0], runs["defaults"][-1]
    assert last["train/cls_loss"] < 0.85 * first["train/cls_loss"], (first, last)
    assert last["val/cls_loss"] < first["val/cls_loss"] - 0.1, (first, last)
    assert max(row["metrics/mAP50(B)"] for row in runs["defaults"]) > 0.002
    flat_first, flat_last = runs["ultralytics"][0], runs["ultralytics"][-1]
    assert flat_last["train/cls_loss"] > 0.95 * flat_first["train/cls_loss"], (flat_first, flat_last)
    assert last["val/cls_loss"] < flat_last["val/cls_loss"] - 0.3
