"""The report's figures (matplotlib, Agg): latency against mAP50-95 (``results.png``) and the learning curves
(``learning_curves.png``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = ["plot_learning_curves", "plot_tradeoff"]


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
