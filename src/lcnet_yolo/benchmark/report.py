"""The report of a benchmark folder: :func:`build_report` aggregates what ``OUT`` holds (``latency.json`` and every
``train/<model>/seed<S>.json``) with :mod:`.stats`, and :func:`write_outputs` writes results.json, results.csv, the
Markdown tables (results.md) and the figures of :mod:`.figures` (results.png, learning_curves.png).
"""

from __future__ import annotations

import csv
import json
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path

from lcnet_yolo.benchmark.accuracy import stored_results
from lcnet_yolo.benchmark.figures import plot_learning_curves, plot_tradeoff
from lcnet_yolo.benchmark.settings import ACTIVATION_VARIANTS, BACKENDS
from lcnet_yolo.benchmark.stats import (
    PLATEAU_GAIN,
    REFERENCES,
    activation_verdict,
    add_ratios,
    aggregate,
    budget_check,
    merge_rows,
)

__all__ = ["accuracy_table", "budget_table", "build_report", "latency_table", "markdown_report", "write_outputs"]


# ----------------------------------------------------------------------------------------------------------------
# Markdown


def _fmt(value, digits: int = 1, ratio=None) -> str:
    if value is None:
        return "–"
    text = f"{value:.{digits}f}"
    return f"{text} ({ratio:.2f}×)" if ratio is not None else text


def _pm(stats: Mapping | None, digits: int = 4) -> str:
    if not stats or stats.get("mean") is None:
        return "–"
    if stats.get("std") is None:
        return f"{stats['mean']:.{digits}f} (n=1)"
    return f"{stats['mean']:.{digits}f} ± {stats['std']:.{digits}f} (n={stats['n']})"


def _ratio_cell(ratio: Mapping | None) -> str:
    if not ratio:
        return "–"
    if ratio["paired_std"] is None:
        return f"{ratio['ratio']:.2f}× (1 pair)"
    return f"{ratio['ratio']:.2f}× ± {ratio['paired_std']:.2f}"


def _plateau_cell(plateau: Mapping | None) -> str:
    if not plateau or plateau["reached"] is None:
        return "–"
    return f"{'reached' if plateau['reached'] else 'NOT reached'} ({100 * plateau['gain']:+.1f} %)"


def latency_table(results: Mapping) -> list[str]:
    """The architecture / latency table of the latency phase."""
    latency = results.get("latency")
    if not latency:
        return ["No latency measurements in this folder (every run so far used --no-latency).", ""]
    settings, machine = latency["settings"], latency["machine"]
    rows = results["rows"]
    sizes = settings["imgsz"]
    backends = [b for b in BACKENDS if any(f"{b}_{sizes[0]}_ms" in r for r in rows)]
    ref = 640 if 640 in sizes else sizes[-1]
    lines = [
        f"Machine: {machine['cpu']}, {machine['logical_cores']} logical cores, {machine['threads']} threads; "
        f"torch {machine['torch']}, onnxruntime {machine['onnxruntime']}, openvino {machine.get('openvino', '–')}, "
        f"ultralytics {machine['ultralytics']}. sgemm peak {latency['sgemm_peak_gflops_per_s']:.1f} GFLOP/s "
        f"(best {settings['sgemm_size']}² fp32 matmul of PyTorch and ONNX Runtime, same threads).",
        f"Latency: batch 1, median (IQR) of {settings['repeats']} interleaved runs after {settings['warmup']} "
        f"warm-up runs, ms; ratios to {results['baseline']} in parentheses. 80-class heads, random weights.",
        "",
    ]
    header = ["Model", "Params M", "GFLOPs@640"]
    for size in sizes:
        header += [f"{b} {size} ms" for b in backends]
    header += [f"GFLOP/s (ORT {ref})", "% of sgemm peak", "train img/s"]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in (r for r in rows if "params" in r):
        cells = [
            r["model"],
            _fmt(r.get("params", 0) / 1e6, 2, r.get("params_ratio")),
            _fmt(r.get("gflops_640"), 2, r.get("gflops_640_ratio")),
        ]
        for size in sizes:
            for b in backends:
                ms, iqr = r.get(f"{b}_{size}_ms"), r.get(f"{b}_{size}_iqr_ms")
                ratio = r.get(f"{b}_{size}_ms_ratio")
                cells.append("–" if ms is None else f"{ms:.1f} ±{iqr:.1f}" + (f" ({ratio:.2f}×)" if ratio else ""))
        cells += [
            _fmt(r.get("achieved_gflops_per_s")),
            _fmt(100 * r["peak_fraction"] if "peak_fraction" in r else None),
            _fmt(r.get("train_img_per_s"), 1, r.get("train_img_per_s_ratio")),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return [*lines, ""]


def accuracy_table(results: Mapping) -> list[str]:
    """The multi-seed accuracy table with its budget, conventions and plateau check."""
    summary, training = results["training"], results.get("training_settings")
    if not summary:
        return []
    refs = [ref for ref in dict.fromkeys([results["baseline"], *REFERENCES]) if ref in summary]
    deploy_size = ((results.get("latency") or {}).get("settings") or {}).get("deploy_imgsz", "?")
    seeds = sorted({s for e in summary.values() for s in e["seeds"]})
    args = "".join(f"{k} {v}, " for k, v in (training or {}).get("train_args", {}).items())
    budget = (
        f"Equal training budget: {training['epochs']} epochs, imgsz {training['train_imgsz']}, batch "
        f"{training['batch']}, {args}from scratch on `{training['data']}`, seeds {', '.join(map(str, seeds))}; "
        "Ultralytics validates after every epoch (no early stop); mAP is the last epoch's."
        if training
        else ""
    )
    lines = [
        budget,
        "mAP: mean ± sample std over seeds (n seeds). Ratio: mean / reference's mean; ± is the sample std of the "
        "per-seed ratios (paired by seed). Plateau: mean-over-seeds mAP50-95 of the last 5 % of epochs vs the 5 % "
        f"ending at 80 % of the budget; reached when the last 20 % of epochs gained < {100 * PLATEAU_GAIN:.0f} %. "
        "int8 = ONNX Runtime static quantization (QDQ, per-channel) of the last-epoch weights; Δ int8 in points "
        "(mean over seeds; plain recipe with min/max ranges, as stored with each training); deployed latency at "
        f"{deploy_size} px (lowest seed's weights; int8 as `lcnet-yolo quantize` ships it: ONNX Runtime QDQ with "
        "hardswish as uint8 lookups, the thin stem in float and percentile ranges, OpenVINO through Ultralytics' "
        "NNCF export), int8 "
        f"ratio to {results['baseline']}'s fp32.",
        "",
    ]
    header = ["Model", "mAP50", "mAP50-95", "per seed mAP50-95"]
    header += [f"× {ref}" for ref in refs]
    header += [
        "plateau (last 20 %)",
        "train min",
        "int8 mAP50-95",
        "Δ int8",
        "fp32 ms",
        "int8 ms",
        "fp32 OpenVINO ms",
        "int8 OpenVINO ms",
    ]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    rows = {r["model"]: r for r in results["rows"]}
    for model in sorted(summary, key=lambda m: list(rows).index(m) if m in rows else len(rows)):
        entry, r = summary[model], rows.get(model, {})
        f32, i8 = entry.get("onnx_fp32_map50_95"), entry.get("onnx_int8_map50_95")
        delta = None
        if f32 and i8:
            paired = [i8["per_seed"][s] - f32["per_seed"][s] for s in i8["per_seed"] if s in f32["per_seed"]]
            delta = 100 * statistics.fmean(paired) if paired else None
        per_seed = entry.get("map50_95", {}).get("per_seed", {})
        cells = [
            model,
            _pm(entry.get("map50")),
            _pm(entry.get("map50_95")),
            ", ".join(f"s{s} {v:.4f}" for s, v in per_seed.items()) or "–",
        ]
        cells += [_ratio_cell(entry["ratios"].get(ref)) for ref in refs]
        cells += [
            _plateau_cell(entry.get("plateau")),
            _fmt((entry.get("train_s") or {}).get("mean", 0) / 60),
            _pm(i8),
            _fmt(delta, 1),
            _fmt(r.get("deploy_fp32_ms"), 1, r.get("deploy_fp32_ms_ratio")),
            _fmt(r.get("deploy_int8_ms"), 1, r.get("deploy_int8_ms_ratio")),
            _fmt(r.get("deploy_fp32_openvino_ms"), 1),
            _fmt(r.get("deploy_int8_openvino_ms"), 1),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    verdict = results.get("activation")
    if verdict and verdict.get("variants"):
        missing = [a for a in ACTIVATION_VARIANTS if a not in verdict["variants"]]
        lines += [
            "",
            f"Activation rule (fastest variant within one std of the best mean mAP50-95): {verdict['reason']}."
            + (f" Not trained here: {', '.join(missing)}." if missing else ""),
        ]
        if verdict["choice"] is not None:
            label = "Provisional verdict (not every variant was trained)" if missing else "Verdict"
            lines.append(f"{label}: **{verdict['choice']}** ({verdict['variants'][verdict['choice']]['model']}).")
    return [*lines, ""]


def budget_table(results: Mapping) -> list[str]:
    """The budget check against a shorter run's folder (``--shorter-budget``), when the report has one."""
    check = results.get("budget_check")
    if not check:
        return []
    short, long = check["epochs"]
    lines = [
        f"Budget check: the final mAP50-95 at {long} epochs (this folder) against {short} epochs "
        f"(`{check['shorter_out']}`, same settings otherwise), over the seeds trained at both. Gain = ratio of the "
        f"means − 1; ± is the sample std of the per-seed gains. The {short}-epoch budget is at the plateau when "
        f"{long} epochs gain < {100 * PLATEAU_GAIN:.0f} %.",
        "",
        f"| Model | mAP50-95 at {short} | mAP50-95 at {long} | gain | per seed | plateau at {short} epochs |",
        "|---|---|---|---|---|---|",
    ]
    for model, c in check["models"].items():
        spread = f" ± {100 * c['gain_std']:.1f}" if c["gain_std"] is not None else ""
        per_seed = ", ".join(f"s{s} {100 * g:+.1f} %" for s, g in c["per_seed_gain"].items())
        verdict = "reached" if c["plateau_at_shorter"] else "NOT reached"
        lines.append(
            f"| {model} | {_pm(c['shorter'])} | {_pm(c['longer'])} | {100 * c['gain']:+.1f}{spread} % | {per_seed} "
            f"| {verdict} |"
        )
    return [*lines, ""]


def markdown_report(results: Mapping) -> str:
    """The Markdown report: architecture/latency table, the multi-seed accuracy table and the budget check."""
    return "\n".join(latency_table(results) + accuracy_table(results) + budget_table(results))


# ----------------------------------------------------------------------------------------------------------------
# Building and writing the report


def _shorter_budget(shorter: Path, training: Mapping | None, references: Sequence[str]) -> tuple[int, dict]:
    """The epochs and aggregated results of a folder trained like this one (``training``) with fewer epochs."""
    runs = stored_results(shorter)
    if not runs or training is None:
        raise FileNotFoundError(f"no trained model-seeds to compare budgets with in {shorter} or in this folder")
    changed = sorted(
        {
            k
            for r in runs
            for k in {*r["training"], *training}
            if k != "epochs" and r["training"].get(k) != training.get(k)
        }
    )
    if changed:
        raise ValueError(f"{shorter} was trained with other settings than this folder: {', '.join(changed)}")
    epochs = {r["training"]["epochs"] for r in runs}
    if len(epochs) > 1 or max(epochs) >= training["epochs"]:
        raise ValueError(
            f"{shorter} trained {'/'.join(map(str, sorted(epochs)))} epochs, not fewer than this folder's "
            f"{training['epochs']}"
        )
    return epochs.pop(), aggregate(runs, references)


def build_report(
    out: Path, baseline: str, order: Sequence[str] = (), shorter_budget: Path | None = None, **extra
) -> dict:
    """Aggregate what ``out`` holds (``latency.json`` and every ``train/<model>/seed<S>.json``) into one results
    dict, with the budget check against ``shorter_budget`` (a folder trained with fewer epochs) when given;
    ``extra`` (settings, argv, wall time) is stored with it."""
    out = Path(out)
    latency_file = out / "latency.json"
    latency = json.loads(latency_file.read_text()) if latency_file.exists() else None
    seeds = stored_results(out)
    trainings = {json.dumps(r["training"], sort_keys=True) for r in seeds}
    if len(trainings) > 1:
        raise ValueError(f"{out} holds results trained with {len(trainings)} different settings; keep one per folder")
    references = tuple(dict.fromkeys([baseline, *REFERENCES]))
    summary = aggregate(seeds, references)
    latency_rows = (latency or {}).get("rows", {})
    rows = merge_rows(latency_rows, summary, order or list(latency_rows))
    add_ratios(rows, baseline)
    verdict = activation_verdict(rows, summary)
    training = seeds[0]["training"] if seeds else None
    budget = None
    if shorter_budget is not None:
        epochs, shorter = _shorter_budget(Path(shorter_budget), training, references)
        budget = {
            "shorter_out": str(shorter_budget),
            "epochs": [epochs, training["epochs"]],
            "models": budget_check(shorter, summary),
        }
    return {
        **extra,
        "baseline": baseline,
        "latency": {k: v for k, v in (latency or {}).items() if k not in ("rows", "raw_ms")} or None,
        "machine": (latency or {}).get("machine"),
        "sgemm_peak_gflops_per_s": (latency or {}).get("sgemm_peak_gflops_per_s"),
        "raw_ms": (latency or {}).get("raw_ms", {}),
        "training_settings": training,
        "data_yaml": seeds[0]["data_yaml"] if seeds else None,
        "rows": list(rows.values()),
        "training": summary,
        "activation": verdict,
        "budget_check": budget,
    }


def write_outputs(results: Mapping, out: Path) -> None:
    """results.json (everything, raw timings and curves included), results.csv (one row per model), results.md,
    results.png and learning_curves.png."""
    out = Path(out)
    (out / "results.json").write_text(json.dumps(results, indent=1))
    keys: list[str] = []
    for row in results["rows"]:
        keys += [k for k in row if k not in keys]
    with open(out / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(results["rows"])
    (out / "results.md").write_text(markdown_report(results))
    plot_tradeoff(results, out / "results.png")
    plot_learning_curves(results["training"], out / "learning_curves.png", [r["model"] for r in results["rows"]])
