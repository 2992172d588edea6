"""`lcnet-yolo benchmark --quick`: one CI-sized run (2 seeds), a rerun that must skip every training, then checks of
what they wrote; the report's statistics and the activation rule on hand-made results; the light neck blocks."""

import csv
import json
import math
import shutil
import statistics
from pathlib import Path

import pytest
import torch

from lcnet_yolo import benchmark
from lcnet_yolo.benchmark import read_curve, summarize
from lcnet_yolo.benchmark.cli import parse_settings
from lcnet_yolo.benchmark.run import time_deployed
from lcnet_yolo.benchmark.settings import BenchmarkSettings
from lcnet_yolo.benchmark.stats import (
    activation_verdict,
    aggregate,
    choose_activation,
    mean_std,
    paired_ratio,
    plateau_check,
)
from lcnet_yolo.nn.layers import PPLCNetBackbone
from lcnet_yolo.nn.neck import LCBlock, LCDown
from lcnet_yolo.plugin.register import packaged_models
from lcnet_yolo.quantize import interleaved_samples

# The smallest run the bookkeeping checks need: one model of ours and the baseline, two seeds (a spread), ours
# listed first so that the tables must follow --models rather than put the baseline first. Training the other
# default models here would only exercise Ultralytics' own trainer; test_detector builds every packaged YAML and
# trains the default n model.
QUICK_MODELS = ("yolov8n-pplcnet", "yolov8n")


@pytest.fixture(scope="session")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("benchmark")
    assert benchmark.main(["--quick", "--models", *QUICK_MODELS, "--out", str(out)]) == 0
    return out, json.loads((out / "results.json").read_text())


@pytest.fixture(scope="session")
def quick_rerun(quick_run):
    """The same quick run again (training only): every model-seed is stored, so nothing may be trained."""
    out, first = quick_run
    stamps = {p: p.stat().st_mtime_ns for p in sorted(out.glob("train/*/seed*.json"))}
    assert benchmark.main(["--quick", "--models", *QUICK_MODELS, "--no-latency", "--out", str(out)]) == 0
    return out, first, stamps, json.loads((out / "results.json").read_text())


@pytest.mark.slow
def test_quick_run_stores_one_result_per_model_and_seed(quick_run):
    out, results = quick_run
    for model in QUICK_MODELS:
        stored = [json.loads((out / "train" / model / f"seed{s}.json").read_text()) for s in (0, 1)]
        assert [r["seed"] for r in stored] == [0, 1]
        for r in stored:
            assert r["training"]["epochs"] == 2 and r["training"]["data"] == "synthetic"
            assert r["curve"]["epoch"] == [1, 2] and len(r["curve"]["map50_95"]) == 2
            assert r["map50_95"] == r["curve"]["map50_95"][-1]  # the last epoch's validation
            assert r["ultralytics_args"]["val"] is True and r["ultralytics_args"]["seed"] == r["seed"]
        summary = results["training"][model]
        values = [r["map50_95"] for r in stored]
        assert summary["map50_95"]["n"] == 2
        assert summary["map50_95"]["mean"] == pytest.approx(statistics.fmean(values))
        assert summary["map50_95"]["std"] == pytest.approx(statistics.stdev(values))
        assert summary["map50_95"]["per_seed"] == {"0": values[0], "1": values[1]}
        mean_curve = [statistics.fmean(c) for c in zip(*(r["curve"]["map50_95"] for r in stored), strict=True)]
        assert summary["curve"]["mean"] == pytest.approx(mean_curve)
    assert (out / "learning_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_rerun_skips_every_finished_training(quick_rerun):
    _, first, stamps, second = quick_rerun
    assert len(stamps) == 2 * len(QUICK_MODELS)
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps  # no result file rewritten
    assert second["this_run"]["trained"] == []
    assert len(second["this_run"]["skipped"]) == 2 * len(QUICK_MODELS)
    assert second["training"] == first["training"]  # the same aggregation of the same files
    assert second["rows"] == first["rows"]  # latency.json of the first run is reported again


@pytest.mark.slow
def test_other_training_settings_in_the_same_folder_are_refused(quick_run, capsys):
    out, _ = quick_run
    args = ["--quick", "--models", *QUICK_MODELS, "--no-latency", "--epochs", "3", "--out", str(out)]
    assert benchmark.main(args) == 2
    assert "seed0.json was trained with epochs 2 (this run: 3); use another --out" in capsys.readouterr().err


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
    assert csv_models == list(QUICK_MODELS)
    for model in QUICK_MODELS:
        assert sum(line.startswith(f"| {model} |") for line in table.splitlines()) == 2  # latency and mAP tables
    assert [row["model"] for row in results["rows"]] == list(QUICK_MODELS)


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
        for key in (
            "params",
            "gflops_640",
            "train_img_per_s",
            "deploy_fp32_ms",
            "deploy_int8_ms",
            "train_s",
            "deploy_int8_openvino_ms",
        ):
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
    samples = interleaved_samples(runners, warmup=1, repeats=3)
    assert calls[:3] == ["a", "b", "c"]  # warm-up
    assert calls[3:] == ["a", "b", "c", "b", "c", "a", "c", "a", "b"]  # rotated rounds
    assert {k: (len(v["wall_ms"]), len(v["cpu_ms"])) for k, v in samples.items()} == {k: (3, 3) for k in "abc"}


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


def test_every_benchmark_model_name_is_a_packaged_yaml_and_builds():
    # building every packaged YAML (strides, outputs) is test_detector's job; here: the benchmark's names resolve
    names = ("yolov8n-pplcnet", "yolov8n-pplcnet-plain", *benchmark.ABLATIONS)
    assert {f"{name}.yaml" for name in names} <= set(packaged_models())
    assert benchmark.build("yolov8n-pplcnet-abl-leaky").model.stride.tolist() == [8.0, 16.0, 32.0]


# ----------------------------------------------------------------------------------------------------------------
# Aggregation, plateau check and the activation rule on hand-made numbers


def test_mean_and_sample_std():
    assert mean_std([0.10, 0.12, 0.11]) == pytest.approx({"mean": 0.11, "std": 0.01, "n": 3})
    assert mean_std([0.2]) == {"mean": 0.2, "std": None, "n": 1}  # no spread from one seed
    assert mean_std([]) == {"mean": None, "std": None, "n": 0}


def test_ratio_is_of_the_means_with_the_spread_of_per_seed_ratios():
    ratio = paired_ratio({0: 0.11, 1: 0.12, 2: 0.13}, {0: 0.10, 1: 0.12, 2: 0.11})
    assert ratio["ratio"] == pytest.approx(0.12 / 0.11)
    per_seed = [1.1, 1.0, 0.13 / 0.11]
    assert ratio["paired_mean"] == pytest.approx(statistics.fmean(per_seed))
    assert ratio["paired_std"] == pytest.approx(statistics.stdev(per_seed))
    assert ratio["n_pairs"] == 3
    only_one_pair = paired_ratio({0: 0.12, 1: 0.14}, {1: 0.07})
    assert only_one_pair["ratio"] == pytest.approx(0.13 / 0.07)
    assert only_one_pair["per_seed"] == {1: pytest.approx(2.0)} and only_one_pair["paired_std"] is None
    assert paired_ratio({0: 0.1}, {}) is None


def test_plateau_compares_the_last_fifth_of_the_epochs():
    rising = [0.005 * e for e in range(1, 21)]  # 20 epochs: window 1, epoch 16 vs epoch 20
    check = plateau_check(rising)
    assert check["before"] == pytest.approx(0.08) and check["after"] == pytest.approx(0.10)
    assert check["gain"] == pytest.approx(0.25) and check["reached"] is False
    flat = [min(0.012 * e, 0.12) for e in range(1, 21)]
    assert plateau_check(flat)["reached"] is True and plateau_check(flat)["gain"] == pytest.approx(0.0)
    slow = [0.1] * 16 + [0.104] * 4  # +4 %: reached; +6 %: not
    assert plateau_check(slow)["reached"] is True
    assert plateau_check([0.1] * 16 + [0.106] * 4)["reached"] is False
    long = [0.1] * 120 + [0.2] * 30  # 150 epochs: windows of 8 epochs, ending at epoch 120 and 150
    assert plateau_check(long)["window"] == 8 and plateau_check(long)["gain"] == pytest.approx(1.0)
    assert plateau_check([0.1])["reached"] is None  # one epoch: nothing to compare


def test_activation_rule_takes_the_fastest_variant_within_one_std_of_the_best():
    variants = {
        "hardswish": {"map50_95_mean": 0.125, "map50_95_std": 0.006, "latency": 12.0},
        "leakyrelu": {"map50_95_mean": 0.121, "map50_95_std": 0.004, "latency": 8.0},
        "relu": {"map50_95_mean": 0.118, "map50_95_std": 0.003, "latency": 6.0},  # 0.118 < 0.125 - 0.006
        "relu6": {"map50_95_mean": 0.130, "map50_95_std": None, "latency": None},  # no latency: not ranked
    }
    verdict = choose_activation(variants)
    assert verdict["best"] == "hardswish" and verdict["threshold"] == pytest.approx(0.119)
    assert verdict["qualified"] == ["leakyrelu", "hardswish"] and verdict["choice"] == "leakyrelu"
    assert "fastest of those: leakyrelu" in verdict["reason"]
    variants["relu"]["map50_95_mean"] = 0.120
    assert choose_activation(variants)["choice"] == "relu"
    one_seed = {a: {**v, "map50_95_std": None} for a, v in variants.items()}  # no spread: only the best qualifies
    assert choose_activation(one_seed)["choice"] == "hardswish"
    assert choose_activation({"relu": {"map50_95_mean": None, "latency": 5.0}})["choice"] is None


def _fake_result(model, seed, final, curve):
    return {
        "model": model,
        "seed": seed,
        "training": {
            "data": "neon-trees",
            "epochs": len(curve),
            "train_imgsz": 416,
            "batch": 4,
            "workers": 2,
            "train_args": {"lr0": 0.01, "optimizer": "AdamW"},
            "int8": False,
            "calib_images": 64,
        },
        "map50": 3 * final,
        "map50_95": final,
        "curve": {"epoch": list(range(1, len(curve) + 1)), "map50": [3 * v for v in curve], "map50_95": curve},
        "train_s": 600.0,
        "weights": f"train/{model}/seed{seed}/weights/last.pt",
        "data_yaml": "neon-trees/data.yaml",
    }


def test_report_only_aggregates_stored_results(tmp_path):
    finals = {"yolov8n": [0.10, 0.12, 0.11], "yolov8n-pplcnet": [0.11, 0.12, 0.13], "yolo26n": [0.10]}
    for model, values in finals.items():
        for seed, final in enumerate(values):
            curve = [final * min(e, 10) / 10 for e in range(1, 21)]  # flat over the last 10 of 20 epochs
            path = tmp_path / "train" / model / f"seed{seed}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(_fake_result(model, seed, final, curve)))
    assert benchmark.main(["--report-only", "--out", str(tmp_path)]) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    ours = results["training"]["yolov8n-pplcnet"]
    assert ours["map50_95"]["mean"] == pytest.approx(0.12) and ours["map50_95"]["std"] == pytest.approx(0.01)
    assert ours["ratios"]["yolov8n"]["ratio"] == pytest.approx(0.12 / 0.11)
    assert ours["ratios"]["yolo26n"]["n_pairs"] == 1 and ours["ratios"]["yolo26n"]["ratio"] == pytest.approx(1.2)
    assert ours["plateau"]["reached"] is True and ours["curve"]["mean"][0] == pytest.approx(0.012)
    table = (tmp_path / "results.md").read_text()
    assert (
        "| yolov8n-pplcnet | 0.3600 ± 0.0300 (n=3) | 0.1200 ± 0.0100 (n=3) | s0 0.1100, s1 0.1200, s2 0.1300 | 1.09× ±"
        in table
    )
    assert "| yolo26n | 0.3000 (n=1) | 0.1000 (n=1) | s0 0.1000 | 0.91× (1 pair) | 1.00× (1 pair) | reached" in table
    assert "Equal training budget: 20 epochs, imgsz 416, batch 4, lr0 0.01, optimizer AdamW" in table
    assert "Not trained here: leakyrelu, relu, relu6." in table
    assert "Verdict" not in table  # no variant has its latencies: nothing to choose
    assert (tmp_path / "learning_curves.png").stat().st_size > 0


def _store(out, finals, epochs):
    for model, values in finals.items():
        for seed, final in enumerate(values):
            path = out / "train" / model / f"seed{seed}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(_fake_result(model, seed, final, [final] * epochs)))


def test_budget_check_pairs_the_final_map_of_two_budgets_by_seed(tmp_path, capsys):
    short, long = tmp_path / "short", tmp_path / "long"
    _store(short, {"yolov8n": [0.10, 0.12, 0.5], "yolov8n-pplcnet": [0.10, 0.10], "yolo26n": [0.1]}, epochs=10)
    _store(long, {"yolov8n": [0.102, 0.1212], "yolov8n-pplcnet": [0.11, 0.12]}, epochs=20)
    assert benchmark.main(["--report-only", "--out", str(long), "--shorter-budget", str(short)]) == 0
    check = json.loads((long / "results.json").read_text())["budget_check"]
    assert check["epochs"] == [10, 20] and sorted(check["models"]) == ["yolov8n", "yolov8n-pplcnet"]
    ours, v8 = check["models"]["yolov8n-pplcnet"], check["models"]["yolov8n"]
    assert ours["gain"] == pytest.approx(0.15) and ours["per_seed_gain"] == {
        "0": pytest.approx(0.1),
        "1": pytest.approx(0.2),
    }
    assert ours["gain_std"] == pytest.approx(0.0707, abs=1e-4) and ours["plateau_at_shorter"] is False
    assert v8["gain"] == pytest.approx(0.2232 / 0.22 - 1) and v8["plateau_at_shorter"] is True  # seed 2: unpaired
    assert v8["shorter"]["n"] == 2 and v8["seeds"] == [0, 1]
    table = (long / "results.md").read_text()
    assert (
        "| yolov8n-pplcnet | 0.1000 ± 0.0000 (n=2) | 0.1150 ± 0.0071 (n=2) | +15.0 ± 7.1 % | s0 +10.0 %, s1 +20.0 % "
        "| NOT reached |" in table
    )
    # the longer folder must be longer, and trained alike otherwise
    assert benchmark.main(["--report-only", "--out", str(short), "--shorter-budget", str(long)]) == 2
    assert "trained 20 epochs, not fewer than this folder's 10" in capsys.readouterr().err
    other = json.loads((short / "train/yolo26n/seed0.json").read_text())
    other["training"]["batch"] = 8
    (short / "train/yolo26n/seed0.json").write_text(json.dumps(other))
    assert benchmark.main(["--report-only", "--out", str(long), "--shorter-budget", str(short)]) == 2
    assert "was trained with other settings than this folder: batch" in capsys.readouterr().err


def test_report_only_of_an_empty_folder_is_a_one_line_error(tmp_path, capsys):
    assert benchmark.main(["--report-only", "--out", str(tmp_path)]) == 2
    assert "holds no benchmark results" in capsys.readouterr().err


def test_report_only_rebuilds_the_published_300_epoch_results_without_their_weights(tmp_path):
    """docs/benchmark keeps the per-seed results but no checkpoints: the report (README's headline) still rebuilds."""
    published = Path(__file__).resolve().parent.parent / "docs" / "benchmark"
    for name in ("full-300", "full-150"):
        shutil.copytree(published / name, tmp_path / name)
    assert not list(tmp_path.rglob("*.pt"))
    out, models = tmp_path / "full-300", ["yolov8n", "yolo11n", "yolo26n", "yolov8n-pplcnet-plain", "yolov8n-pplcnet"]
    args = ["--report-only", "--out", str(out), "--models", *models, "--shorter-budget", str(tmp_path / "full-150")]
    assert benchmark.main(args) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["training"]["yolov8n-pplcnet"]["map50_95"]["mean"] == pytest.approx(0.1345, abs=5e-5)
    assert results["training"]["yolov8n"]["map50_95"]["mean"] == pytest.approx(0.1360, abs=5e-5)
    assert results["budget_check"]["models"]["yolov8n-pplcnet"]["gain"] == pytest.approx(0.064, abs=5e-4)


def test_stored_results_whose_weights_are_gone_are_not_timed(tmp_path, capsys):
    for seed in (0, 1):
        path = tmp_path / "train" / "yolov8n-pplcnet" / f"seed{seed}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(_fake_result("yolov8n-pplcnet", seed, 0.1, [0.1])))
    settings = BenchmarkSettings(out=tmp_path, models=("yolov8n-pplcnet",))
    assert time_deployed(settings, ["onnxruntime"]) == ({}, {})
    err = capsys.readouterr().err.splitlines()
    assert [line.split("] ", 1)[1] for line in err] == [
        f"yolov8n-pplcnet seed {seed}: weights train/yolov8n-pplcnet/seed{seed}/weights/last.pt are gone, not timed"
        for seed in (0, 1)
    ]


def test_seed_is_an_alias_of_one_seed_and_seeds_must_differ():
    assert parse_settings(["--seed", "3"])[1].seeds == (3,)
    assert parse_settings(["--seeds", "0", "1", "2"])[1].seeds == (0, 1, 2)
    assert parse_settings([])[1].seeds == (0, 1, 2) and parse_settings([])[1].epochs == 300
    assert parse_settings(["--quick"])[1].seeds == (0, 1)
    with pytest.raises(ValueError, match="no seed twice"):
        parse_settings(["--seeds", "1", "1"])
    with pytest.raises(SystemExit):
        parse_settings(["--seed", "1", "--seeds", "2"])


def test_curve_is_read_from_ultralytics_results_csv(tmp_path):
    path = tmp_path / "results.csv"
    path.write_text(
        "epoch,time,train/box_loss,metrics/mAP50(B),metrics/mAP50-95(B)\n"
        "1,3.1,2.5,0.01,0.002\n2,6.3,2.1,0.01,0.002\n3,9.2,1.9,0.12,0.031\n"
    )
    assert read_curve(path) == {"epoch": [1, 2, 3], "map50": [0.01, 0.01, 0.12], "map50_95": [0.002, 0.002, 0.031]}
    # with --val-every 2 only epochs 2 and 3 (the last) were validated; epoch 1 repeats stale numbers
    assert read_curve(path, {2, 3}) == {"epoch": [2, 3], "map50": [0.01, 0.12], "map50_95": [0.002, 0.031]}
    path.write_text("epoch,time\n")
    with pytest.raises(RuntimeError, match="holds no epoch"):
        read_curve(path)


def test_activation_verdict_reads_the_variants_from_aggregated_results():
    finals = {
        "yolov8n-pplcnet": [0.120, 0.126, 0.123],  # hardswish: best mean 0.123, std 0.003
        "yolov8n-pplcnet-abl-leaky": [0.118, 0.122, 0.123],  # 0.121: within one std
        "yolov8n-pplcnet-abl-relu": [0.110, 0.112, 0.114],  # 0.112: not
        "yolov8n-pplcnet-abl-relu6": [0.119, 0.121, 0.123],  # 0.121: within
    }
    results = [_fake_result(m, s, v, [v] * 5) for m, values in finals.items() for s, v in enumerate(values)]
    latencies = {"yolov8n-pplcnet": 12.0, "yolov8n-pplcnet-abl-leaky": 8.0, "yolov8n-pplcnet-abl-relu": 6.0,
                 "yolov8n-pplcnet-abl-relu6": 7.0}  # fmt: skip
    keys = ("deploy_fp32_ms", "deploy_fp32_openvino_ms", "deploy_int8_ms", "deploy_int8_openvino_ms")
    rows = {m: dict.fromkeys(keys, ms) for m, ms in latencies.items()}
    rows["yolov8n-pplcnet-abl-relu6"]["deploy_int8_openvino_ms"] = 28.0  # geometric mean 7 * 4 ** 0.25 = 9.9 ms
    verdict = activation_verdict(rows, aggregate(results))
    assert verdict["best"] == "hardswish" and verdict["threshold"] == pytest.approx(0.120)
    assert verdict["qualified"] == ["leakyrelu", "relu6", "hardswish"] and verdict["choice"] == "leakyrelu"
    assert verdict["variants"]["relu6"]["latency"] == pytest.approx(7.0 * 4**0.25)
