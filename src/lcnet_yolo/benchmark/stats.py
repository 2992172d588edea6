"""The report's numbers: per-seed results aggregated into mean ± standard deviation, ratios to reference models
(paired by seed), the plateau check of every learning curve, the activation rule, and one flat row per model.

Conventions, stated in the report as well:

* mean ± sample standard deviation (n - 1 in the denominator) over seeds, with n; no spread when n = 1;
* ratio to a reference model = mean(model) / mean(reference); its spread is the sample standard deviation of the
  per-seed ratios model(seed s) / reference(seed s) over the seeds both were trained with (paired by seed: same
  data order and augmentation stream);
* plateau: on the mean-over-seeds validation mAP50-95 curve, the mean of the last 5 % of epochs against the mean
  of the 5 % of epochs that end at 80 % of the budget; the plateau is reached when that gain is below 5 %
  (relative), i.e. the last 20 % of the epochs improved mAP50-95 by less than 5 %;
* budget check: the final mAP50-95 of a longer budget against a shorter one (same settings otherwise, paired by
  seed); the shorter budget is at the plateau when the longer one gains less than the same 5 %. Unlike the
  within-run check it is not confounded by the end-of-run schedule, which both budgets share.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence

from lcnet_yolo.benchmark.settings import ACTIVATION_VARIANTS

__all__ = [
    "ACCURACY_KEYS",
    "PLATEAU_GAIN",
    "PLATEAU_TAIL",
    "PLATEAU_WINDOW",
    "RATIO_KEYS",
    "REFERENCES",
    "RULE_LATENCIES",
    "activation_verdict",
    "add_ratios",
    "aggregate",
    "budget_check",
    "choose_activation",
    "mean_curve",
    "mean_std",
    "merge_rows",
    "paired_ratio",
    "plateau_check",
    "rule_latency",
]

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


def budget_check(shorter: Mapping[str, Mapping], longer: Mapping[str, Mapping], gain: float = PLATEAU_GAIN) -> dict:
    """Per model aggregated (:func:`aggregate`) at both budgets, over the seeds trained at both: the final
    mAP50-95 at each, the longer budget's relative gain (ratio of the means - 1, with the spread of the per-seed
    gains) and whether the shorter budget is at the plateau (the longer one gains less than ``gain``)."""
    checks = {}
    for model in (m for m in longer if m in shorter):
        short = shorter[model].get("map50_95", {}).get("per_seed", {})
        long = longer[model].get("map50_95", {}).get("per_seed", {})
        seeds = sorted(set(short) & set(long))
        short, long = {s: short[s] for s in seeds}, {s: long[s] for s in seeds}
        ratio = paired_ratio(long, short)
        if ratio is None:
            continue
        checks[model] = {
            "seeds": seeds,
            "shorter": {**mean_std(list(short.values())), "per_seed": short},
            "longer": {**mean_std(list(long.values())), "per_seed": long},
            "gain": ratio["ratio"] - 1,
            "gain_std": ratio["paired_std"],
            "per_seed_gain": {s: r - 1 for s, r in ratio["per_seed"].items()},
            "plateau_at_shorter": bool(ratio["ratio"] - 1 < gain),
        }
    return checks


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
