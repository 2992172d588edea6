"""The report: per-seed results aggregated into mean ± standard deviation, ratios to reference models, the plateau
check of every learning curve, the activation rule, and the output files (results.{json,csv,md,png},
learning_curves.png).

Conventions, stated in the report as well:

* mean ± sample standard deviation (n - 1 in the denominator) over seeds, with n; no spread when n = 1;
* ratio to a reference model = mean(model) / mean(reference); its spread is the sample standard deviation of the
  per-seed ratios model(seed s) / reference(seed s) over the seeds both were trained with (paired by seed: same
  data order and augmentation stream);
* plateau: on the mean-over-seeds validation mAP50-95 curve, the mean of the last 5 % of epochs against the mean
  of the 5 % of epochs that end at 80 % of the budget; the plateau is reached when that gain is below 5 %
  (relative), i.e. the last 20 % of the epochs improved mAP50-95 by less than 5 %.
"""

from __future__ import annotations

import csv
import json
import math
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path

from lcnet_yolo.benchmark.settings import ACTIVATION_VARIANTS, BACKENDS

PLATEAU_TAIL = 0.2  # the last 20 % of the epochs ...
PLATEAU_GAIN = 0.05  # ... improve mAP50-95 by less than 5 % relative
PLATEAU_WINDOW = 0.05  # each end of that stretch is the mean of 5 % of the epochs (at least one)
ACCURACY_KEYS = ("map50", "map50_95", "onnx_fp32_map50_95", "onnx_int8_map50_95", "train_s")
REFERENCES = ("yolov8n", "yolo26n")
# the latencies the activation rule ranks variants by: trained fp32 and int8 files, ONNX Runtime and OpenVINO,
# at the deploy imgsz (640 px in the full run)
RULE_LATENCIES = ("deploy_fp32_ms", "deploy_fp32_openvino_ms", "deploy_int8_ms", "deploy_int8_openvino_ms")


# ----------------------------------------------------------------------------------------------------------------
# Statistics


def mean_std(values: Sequence[float]) -> dict:
    """``{"mean", "std", "n"}``: the sample standard deviation, ``None`` for fewer than two values."""
    values = [float(v) for v in values]
    if not values:
        return {"mean": None, "std": None, "n": 0}
    std = statistics.stdev(values) if len(values) >= 2 else None
    return {"mean": statistics.fmean(values), "std": std, "n": len(values)}


def paired_ratio(values: Mapping[int, float], reference: Mapping[int, float]) -> dict | None:
    """Ratio of ``values`` to ``reference`` (both ``{seed: value}``): ratio of the means, and the mean, sample std
    and count of the per-seed ratios over the seeds both have; ``None`` without a reference."""
    if not values or not reference or not statistics.fmean(reference.values()):
        return None
    per_seed = {s: values[s] / reference[s] for s in sorted(set(values) & set(reference)) if reference[s]}
    spread = mean_std(list(per_seed.values()))
    return {
        "ratio": statistics.fmean(values.values()) / statistics.fmean(reference.values()),
        "paired_mean": spread["mean"],
        "paired_std": spread["std"],
        "n_pairs": spread["n"],
        "per_seed": per_seed,
    }


def mean_curve(curves: Sequence[Mapping[str, list[float]]], key: str = "map50_95") -> dict:
    """Mean and sample std over seeds of a per-epoch curve, over the epochs every seed has."""
    length = min(len(c[key]) for c in curves)
    columns = [[c[key][i] for c in curves] for i in range(length)]
    stats = [mean_std(col) for col in columns]
    return {
        "epoch": list(curves[0]["epoch"][:length]),
        "mean": [s["mean"] for s in stats],
        "std": [s["std"] or 0.0 for s in stats],
    }


def plateau_check(curve: Sequence[float], tail: float = PLATEAU_TAIL, gain: float = PLATEAU_GAIN) -> dict:
    """Whether the last ``tail`` of the epochs improved ``curve`` by less than ``gain`` (relative), comparing the
    mean of the last ``PLATEAU_WINDOW`` of the epochs with the mean of the same number of epochs ending at
    ``1 - tail`` of the budget."""
    epochs = len(curve)
    window = max(1, round(PLATEAU_WINDOW * epochs))
    cut = max(window, round((1 - tail) * epochs))
    if epochs < 2 or cut >= epochs:
        return {"reached": None, "gain": None, "before": None, "after": None, "epochs": epochs, "window": window}
    before = statistics.fmean(curve[cut - window : cut])
    after = statistics.fmean(curve[-window:])
    relative = (after - before) / before if before > 0 else math.inf
    return {
        "reached": bool(relative < gain),
        "gain": relative,
        "before": before,
        "after": after,
        "epochs": epochs,
        "window": window,
    }


def aggregate(results: Sequence[Mapping], references: Sequence[str] = REFERENCES) -> dict[str, dict]:
    """Per model: mean ± std and per-seed values of every accuracy key, ratios to ``references`` (paired by seed),
    the mean learning curve and its plateau check."""
    by_model: dict[str, list[Mapping]] = {}
    for result in results:
        by_model.setdefault(result["model"], []).append(result)
    summary: dict[str, dict] = {}
    for model, runs in by_model.items():
        runs = sorted(runs, key=lambda r: r["seed"])
        entry: dict = {"model": model, "seeds": [r["seed"] for r in runs]}
        for key in ACCURACY_KEYS:
            values = {r["seed"]: r[key] for r in runs if r.get(key) is not None}
            if values:
                entry[key] = {**mean_std(list(values.values())), "per_seed": values}
        curves = [r["curve"] for r in runs if r.get("curve")]
        if curves:
            entry["curve"] = mean_curve(curves)
            entry["plateau"] = plateau_check(entry["curve"]["mean"])
        summary[model] = entry
    for entry in summary.values():
        entry["ratios"] = {}
        for ref in references:
            if ref in summary and "map50_95" in summary[ref] and "map50_95" in entry:
                ratio = paired_ratio(entry["map50_95"]["per_seed"], summary[ref]["map50_95"]["per_seed"])
                if ratio is not None:
                    entry["ratios"][ref] = ratio
    return summary


# ----------------------------------------------------------------------------------------------------------------
# The activation rule


def rule_latency(row: Mapping) -> float | None:
    """Geometric mean of a model's fp32 and int8 latencies in ONNX Runtime and OpenVINO at the deploy imgsz
    (``None`` when one is missing)."""
    values = [row.get(k) for k in RULE_LATENCIES]
    if any(v is None or v <= 0 for v in values):
        return None
    return math.exp(statistics.fmean(math.log(v) for v in values))


def choose_activation(variants: Mapping[str, Mapping]) -> dict:
    """The default activation by BENCHMARKS.md's rule: among the variants whose mean mAP50-95 is within one
    standard deviation of the best variant's mean, the fastest (lowest ``latency``).

    ``variants``: ``{activation: {"map50_95_mean", "map50_95_std", "latency"}}`` (std ``None`` = one seed, no
    spread: only variants at least as good as the best qualify). Variants without a mean or a latency take no
    part. Returns ``{"choice", "best", "threshold", "qualified", "reason"}``; ``choice`` is ``None`` when no
    variant can be ranked.
    """
    usable = {a: v for a, v in variants.items() if v.get("map50_95_mean") is not None and v.get("latency")}
    if not usable:
        return {
            "choice": None,
            "best": None,
            "threshold": None,
            "qualified": [],
            "reason": "no variant has both a trained mAP50-95 and its four latencies",
        }
    best = max(usable, key=lambda a: usable[a]["map50_95_mean"])
    threshold = usable[best]["map50_95_mean"] - (usable[best].get("map50_95_std") or 0.0)
    qualified = sorted(
        (a for a, v in usable.items() if v["map50_95_mean"] >= threshold), key=lambda a: usable[a]["latency"]
    )
    choice = qualified[0]
    reason = (
        f"best mean mAP50-95: {best} ({usable[best]['map50_95_mean']:.3f}); within one std of it (>= {threshold:.3f}): "
        f"{', '.join(qualified)}; fastest of those: {choice} ({usable[choice]['latency']:.1f} ms geometric mean of "
        "ORT/OpenVINO fp32/int8)"
    )
    return {"choice": choice, "best": best, "threshold": threshold, "qualified": qualified, "reason": reason}


def activation_verdict(rows: Mapping[str, Mapping], summary: Mapping[str, Mapping]) -> dict:
    """:func:`choose_activation` on the activation variants of the default n model present in this report."""
    variants = {}
    for act, model in ACTIVATION_VARIANTS.items():
        if model in summary and "map50_95" in summary[model]:
            variants[act] = {
                "model": model,
                "map50_95_mean": summary[model]["map50_95"]["mean"],
                "map50_95_std": summary[model]["map50_95"]["std"],
                "n": summary[model]["map50_95"]["n"],
                "latency": rule_latency(rows.get(model, {})),
            }
    return {**choose_activation(variants), "variants": variants}


# ----------------------------------------------------------------------------------------------------------------
# Rows (one per model: latency measurements + aggregated accuracy)


RATIO_KEYS = (
    "params",
    "gflops_640",
    "train_img_per_s",
    "map50",
    "map50_95",
    "onnx_fp32_map50_95",
    "onnx_int8_map50_95",
)


def add_ratios(rows: dict[str, dict], baseline: str) -> None:
    """``<key>_ratio`` = value / baseline's value for counts, scores (means over seeds) and latencies (``*_ms``);
    int8 latency is divided by the baseline's fp32 latency."""
    base = rows.get(baseline)
    if base is None:
        return
    for row in rows.values():
        keys = [k for k in row if k in RATIO_KEYS or (k.endswith("_ms") and not k.endswith("_iqr_ms"))]
        for key in keys:
            ref_key = "deploy_fp32_ms" if key == "deploy_int8_ms" else key
            if row.get(key) is not None and base.get(ref_key):
                row[f"{key}_ratio"] = row[key] / base[ref_key]


def merge_rows(latency_rows: Mapping[str, Mapping], summary: Mapping[str, Mapping], order: Sequence[str]) -> list:
    """One flat row per model (the models of ``order`` first): latency fields plus, for trained models, the mean,
    std, n and per-seed values of every accuracy key."""
    names = list(dict.fromkeys([*order, *latency_rows, *summary]))
    rows: dict[str, dict] = {}
    for name in names:
        if name not in latency_rows and name not in summary:
            continue
        row = {"model": name, **latency_rows.get(name, {})}
        row["model"] = name
        for key in ACCURACY_KEYS:
            stats = summary.get(name, {}).get(key)
            if stats:
                row[key] = stats["mean"]
                row[f"{key}_std"] = stats["std"]
                row[f"{key}_n"] = stats["n"]
                row[f"{key}_per_seed"] = {str(s): v for s, v in stats["per_seed"].items()}
        rows[name] = row
    return rows


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
        f"(mean over seeds); deployed latency at {deploy_size} px (lowest seed's weights), int8 ratio to "
        f"{results['baseline']}'s fp32.",
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


def markdown_report(results: Mapping) -> str:
    """The Markdown report: architecture/latency table, then the multi-seed accuracy table."""
    return "\n".join(latency_table(results) + accuracy_table(results))


# ----------------------------------------------------------------------------------------------------------------
# Figures


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_tradeoff(results: Mapping, path: Path) -> Path:
    """ONNX Runtime latency (largest imgsz) vs mean mAP50-95 with ± std error bars (GFLOPs when nothing was
    trained); bubble area = parameters."""
    plt = _pyplot()
    latency = results.get("latency") or {}
    size = (latency.get("settings") or {}).get("imgsz", [640])[-1]
    rows = [r for r in results["rows"] if r.get(f"onnxruntime_{size}_ms")]
    trained = any("map50_95" in r for r in rows)
    if trained:
        rows = [r for r in rows if "map50_95" in r]
    ykey, ylabel = ("map50_95", "mAP50-95 (mean ± std over seeds)") if trained else ("gflops_640", "GFLOPs at 640")
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    for r in rows:
        x, y = r[f"onnxruntime_{size}_ms"], r[ykey]
        color = "tab:red" if r["model"].startswith("yolov8n-pplcnet") else "tab:blue"
        ax.scatter(x, y, s=300 * r["params"] / 3e6, alpha=0.5, color=color)
        if trained and r.get("map50_95_std"):
            ax.errorbar(x, y, yerr=r["map50_95_std"], color=color, capsize=3, lw=1)
        ax.annotate(r["model"], (x, y), fontsize=7, xytext=(4, 4), textcoords="offset points")
    threads = (latency.get("machine") or {}).get("threads", "?")
    ax.set_xlabel(f"ONNX Runtime latency at {size} px, batch 1, {threads} threads (ms)")
    ax.set_ylabel(ylabel)
    ax.set_title("lcnet-yolo vs Ultralytics n models (bubble area = parameters)", fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_learning_curves(summary: Mapping[str, Mapping], path: Path, order: Sequence[str] = ()) -> Path | None:
    """Validation mAP50-95 against epoch, mean over seeds with a ± std band, one line per trained model."""
    order = list(order) + [m for m in summary if m not in order]
    curves = {m: summary[m]["curve"] for m in order if m in summary and summary[m].get("curve")}
    if not curves:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=100)
    for model, curve in curves.items():
        n = summary[model]["map50_95"]["n"] if "map50_95" in summary[model] else 1
        mean, std = curve["mean"], curve["std"]
        (line,) = ax.plot(curve["epoch"], mean, lw=1.2, label=f"{model} (n={n})")
        ax.fill_between(
            curve["epoch"],
            [m - s for m, s in zip(mean, std, strict=True)],
            [m + s for m, s in zip(mean, std, strict=True)],
            alpha=0.15,
            color=line.get_color(),
            lw=0,
        )
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation mAP50-95 (mean over seeds, band ± std)")
    ax.set_title("Learning curves: how fast each model learns and where it ends", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


# ----------------------------------------------------------------------------------------------------------------
# Building and writing the report


def build_report(out: Path, baseline: str, order: Sequence[str] = (), **extra) -> dict:
    """Aggregate what ``out`` holds (``latency.json`` and every ``train/<model>/seed<S>.json``) into one results
    dict; ``extra`` (settings, argv, wall time) is stored with it."""
    from lcnet_yolo.benchmark.accuracy import stored_results

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
    return {
        **extra,
        "baseline": baseline,
        "latency": {k: v for k, v in (latency or {}).items() if k not in ("rows", "raw_ms")} or None,
        "machine": (latency or {}).get("machine"),
        "sgemm_peak_gflops_per_s": (latency or {}).get("sgemm_peak_gflops_per_s"),
        "raw_ms": (latency or {}).get("raw_ms", {}),
        "training_settings": seeds[0]["training"] if seeds else None,
        "data_yaml": seeds[0]["data_yaml"] if seeds else None,
        "rows": list(rows.values()),
        "training": summary,
        "activation": verdict,
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
