"""``lcnet-yolo benchmark --device``: the GPU mode's table, and its fp32 CPU fallback at a tiny size (CI smoke)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lcnet_yolo.benchmark.cli import main

LCNET_YOLO = Path(sys.executable).with_name("lcnet-yolo")
FIGURES = ("train_img_per_s", "cold_first_step_s", "infer_b1_ms", "infer_batch_img_per_s")


@pytest.mark.slow
def test_cpu_fallback_measures_every_model_and_setting(tmp_path, subprocess_env):
    out = tmp_path / "bench"
    command = [str(LCNET_YOLO), "benchmark", "--device", "cpu", "--models", "yolov8n", "yolov8n-pplcnet"]
    command += ["--imgsz", "64", "--batch", "2", "--repeats", "2", "--warmup", "1", "--channels-last"]
    command += ["--deterministic", "--out", str(out)]
    result = subprocess.run(command, env=subprocess_env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads((out / "device-cpu.json").read_text())
    assert record["machine"]["precision"] == "fp32" and record["settings"]["imgsz"] == 64
    rows = record["rows"]
    combos = {(r["model"], r["channels_last"], r["deterministic"]) for r in rows}
    assert combos == {(m, c, d) for m in ("yolov8n", "yolov8n-pplcnet") for c in (False, True) for d in (False, True)}
    for row in rows:
        assert all(math.isfinite(row[key]) and row[key] > 0 for key in FIGURES), row
        if row["model"] == "yolov8n":
            assert row["train_vs_baseline"] == row["infer_b1_vs_baseline"] == 1.0
    table = (out / "device-cpu.md").read_text()
    assert "| model | channels_last | deterministic | train img/s | x yolov8n |" in table
    assert len([line for line in table.splitlines() if line.startswith("| yolov8n")]) == 8
    assert table in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--device", "gpu"], "--device gpu: expected a CUDA GPU index (0) or cpu"),
        (["--device", "cpu", "--imgsz", "64", "128"], "--imgsz 64 128: the GPU mode measures one size"),
        (["--channels-last"], "--channels-last and --deterministic apply to the GPU mode (--device)"),
        (["--device", "cpu", "--models", "yolov8q"], "unknown model(s): yolov8q"),
    ],
)
def test_wrong_gpu_mode_arguments_end_with_one_line(capsys, tmp_path, args, message):
    assert main([*args, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err == f"lcnet-yolo benchmark: error: {message}\n"


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_gpu_mode_without_a_gpu_says_so(capsys, tmp_path):
    assert main(["--device", "0", "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err == (
        "lcnet-yolo benchmark: error: --device 0: no CUDA GPU here (torch.cuda.is_available() is False); "
        "use --device cpu\n"
    )
