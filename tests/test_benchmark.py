"""`lcnet-yolo benchmark --quick`: one CI-sized run, then checks of what it wrote; the light neck blocks."""

import csv
import json
import math

import pytest
import torch

from lcnet_yolo import benchmark
from lcnet_yolo.benchmark import DEFAULT_MODELS, summarize, time_interleaved
from lcnet_yolo.nn.layers import PPLCNetBackbone
from lcnet_yolo.nn.neck import LCBlock, LCDown


@pytest.fixture(scope="session")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("benchmark")
    assert benchmark.main(["--quick", "--out", str(out)]) == 0
    return out, json.loads((out / "results.json").read_text())


@pytest.mark.slow
def test_quick_run_writes_every_output_file(quick_run):
    out, _ = quick_run
    for name in ("results.json", "results.csv", "results.md", "results.png"):
        assert (out / name).stat().st_size > 0, name
    assert (out / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_table_and_csv_hold_every_model(quick_run):
    out, results = quick_run
    table = (out / "results.md").read_text()
    with open(out / "results.csv") as f:
        csv_models = [row["model"] for row in csv.DictReader(f)]
    assert csv_models == list(DEFAULT_MODELS)
    for model in DEFAULT_MODELS:
        assert sum(line.startswith(f"| {model} |") for line in table.splitlines()) == 2  # latency and mAP tables
    assert [row["model"] for row in results["rows"]] == list(DEFAULT_MODELS)


@pytest.mark.slow
def test_baseline_ratios_are_one_and_ours_are_smaller(quick_run):
    _, results = quick_run
    rows = {row["model"]: row for row in results["rows"]}
    ratios = [k for k in rows["yolov8n"] if k.endswith("_ratio") and k != "deploy_int8_ms_ratio"]
    assert {"params_ratio", "gflops_640_ratio", "onnxruntime_64_ms_ratio", "train_img_per_s_ratio"} <= set(ratios)
    for key in ratios:
        assert rows["yolov8n"][key] == pytest.approx(1.0), key
    assert rows["yolov8n-pplcnet"]["params_ratio"] < 0.6  # a count, not a timing: the light design is smaller
    assert rows["yolov8n-pplcnet"]["gflops_640_ratio"] < 0.5


@pytest.mark.slow
def test_every_measurement_is_finite_and_timings_positive(quick_run):
    _, results = quick_run
    assert results["machine"]["threads"] >= 1 and results["sgemm_peak_gflops_per_s"] > 0
    for row in results["rows"]:
        numbers = {k: v for k, v in row.items() if isinstance(v, (int, float))}
        assert all(math.isfinite(v) for v in numbers.values()), row["model"]
        for backend in ("torch", "onnxruntime", "openvino"):
            assert row[f"{backend}_64_ms"] > 0 and row[f"{backend}_64_iqr_ms"] >= 0
        for key in ("params", "gflops_640", "train_img_per_s", "deploy_fp32_ms", "deploy_int8_ms", "train_s"):
            assert row[key] > 0, (row["model"], key)
        for key in ("map50", "map50_95", "onnx_fp32_map50_95", "onnx_int8_map50_95"):
            assert 0.0 <= row[key] <= 1.0, (row["model"], key)
        achieved = row["gflops_640"] * (64 / 640) ** 2 / (row["onnxruntime_64_ms"] / 1e3)
        assert row["achieved_gflops_per_s"] == pytest.approx(achieved)
        assert row["peak_fraction"] == pytest.approx(achieved / results["sgemm_peak_gflops_per_s"])
    for samples in results["raw_ms"].values():
        assert len(samples) == results["settings"]["repeats"]


def test_interleaved_timing_calls_every_runner_once_per_round():
    calls = []
    runners = {name: (lambda name=name: calls.append(name)) for name in "abc"}
    samples = time_interleaved(runners, warmup=1, repeats=3)
    assert calls[:3] == ["a", "b", "c"]  # warm-up
    assert calls[3:] == ["a", "b", "c", "b", "c", "a", "c", "a", "b"]  # rotated rounds
    assert {k: len(v) for k, v in samples.items()} == {"a": 3, "b": 3, "c": 3}


def test_summary_is_median_and_interquartile_range():
    stats = summarize([1.0, 2.0, 3.0, 4.0, 100.0])
    assert stats["median"] == 3.0
    assert stats["iqr"] == pytest.approx(2.0)


def test_light_neck_blocks_keep_width_and_halve_resolution():
    x = torch.rand(2, 16, 32, 32)
    assert LCBlock(16, 2, 5)(x).shape == x.shape
    assert LCDown(16, 3)(x).shape == (2, 16, 16, 16)
    assert LCBlock(16, 1, 3, False, False, "relu").blocks[0].dw_conv.conv.kernel_size == (3, 3)
    with pytest.raises(ValueError, match="n >= 1"):
        LCBlock(16, 0)


def test_ablation_backbone_switches_reach_the_network():
    plain = PPLCNetBackbone(0.5, [2, 3, 4], [], [], "relu")
    assert plain.arch == {"act": "relu", "se_blocks": [], "large_kernel_blocks": []}
    assert [f.shape[1] for f in plain(torch.rand(1, 3, 64, 64))] == [64, 128, 256]


def test_bad_model_name_is_a_one_line_error(capsys, tmp_path):
    assert benchmark.main(["--quick", "--models", "yolov8n", "no-such-model", "--out", str(tmp_path)]) == 2
    assert "unknown model(s): no-such-model" in capsys.readouterr().err


def test_every_packaged_model_yaml_builds():
    for name in ("yolov8n-pplcnet", "yolov8n-pplcnet-plain", *benchmark.ABLATIONS):
        model = benchmark.build(name).model
        assert model.stride.tolist() == [8.0, 16.0, 32.0], name
