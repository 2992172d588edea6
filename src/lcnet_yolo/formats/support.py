"""What each of Ultralytics' export formats needs, and the one-line error when a package is missing.

``import lcnet_yolo`` turns Ultralytics' automatic ``pip install`` off, so a format whose package is missing would
end in ``No module named ...``. This module knows which Python module each format needs for export and for
inference, and which lcnet-yolo extra installs it (``pip install 'lcnet-yolo[ncnn]'``):

* :func:`require_export`, :func:`require_runtime` and :func:`require_track` raise :class:`MissingPackageError`
  (one line naming the extra) before Ultralytics starts; :func:`check_mode` runs them (and checks an exported
  model's task and input size) for the ``lcnet-yolo`` command;
* :func:`missing_package_message` and :func:`message_for` turn any ``ModuleNotFoundError`` into the same one line;
* :func:`support_markdown` is the table of every format and its extra (``lcnet-yolo formats --support``).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lcnet_yolo.formats.metadata import exported_metadata
from lcnet_yolo.io.errors import MissingPackageError
from lcnet_yolo.plugin.compat import export_format_aliases, export_format_names, export_suffixes

__all__ = [
    "ALIASES",
    "FORMATS",
    "PACKAGES",
    "RUNTIME_SUFFIXES",
    "FormatSupport",
    "MissingPackageError",
    "canonical_format",
    "check_mode",
    "check_model",
    "exported_format",
    "exported_metadata",
    "install_hint",
    "is_installed",
    "message_for",
    "missing_package_message",
    "require_export",
    "require_runtime",
    "require_track",
    "support_markdown",
]

# Python module -> (PyPI package, lcnet-yolo extra that installs it; None where lcnet-yolo has no extra for it)
PACKAGES: dict[str, tuple[str, str | None]] = {
    "onnx": ("onnx", "onnx"),
    "onnxslim": ("onnxslim", "onnx"),
    "onnxruntime": ("onnxruntime", "onnx"),
    "openvino": ("openvino", "openvino"),
    "nncf": ("nncf", "openvino"),
    "ncnn": ("ncnn", "ncnn"),
    "pnnx": ("pnnx", "ncnn"),
    "MNN": ("MNN", "mnn"),
    "lap": ("lap", "track"),
    "coremltools": ("coremltools", "coreml"),
    "paddle": ("paddlepaddle", "paddle"),
    "x2paddle": ("x2paddle", "paddle"),
    "litert_torch": ("litert-torch", "tflite"),
    "ai_edge_litert": ("ai-edge-litert", "tflite"),
    "ai_edge_quantizer": ("ai-edge-quantizer", "tflite"),
    "tensorflow": ("tensorflow", "tensorflow"),
    "onnx2tf": ("onnx2tf", "tensorflow"),
    "tf_keras": ("tf_keras", "tensorflow"),
    "executorch": ("executorch", "executorch"),
    "tensorrt": ("tensorrt", None),
    "coreai_torch": ("coreai-torch", None),
    "model_compression_toolkit": ("model-compression-toolkit", None),
    "rknn": ("rknn-toolkit2", None),
    "dx_com": ("dx_com", None),
    "quark": ("amd-quark", None),
}


@dataclass(frozen=True)
class FormatSupport:
    """What one Ultralytics export format needs, and whether lcnet-yolo tests it."""

    name: str  # Ultralytics' ``format=`` value
    extra: str | None  # the lcnet-yolo extra that installs export and runtime (None: core, or no extra)
    export: tuple[str, ...]  # Python modules the export needs
    runtime: tuple[str, ...]  # Python modules predict/val on the exported model need
    tested: bool = False  # exported, predicted and validated by tests/test_formats.py
    note: str = ""  # why it is not tested here


# What lcnet-yolo knows of each format of Ultralytics 8.4.190's exporter.
_SUPPORT: dict[str, FormatSupport] = {
    f.name: f
    for f in (
        FormatSupport("torchscript", None, (), (), tested=True),
        FormatSupport("onnx", "onnx", ("onnx", "onnxslim"), ("onnxruntime",), tested=True),
        FormatSupport("openvino", "openvino", ("openvino",), ("openvino",), tested=True),
        FormatSupport("engine", None, ("tensorrt",), ("tensorrt",), note="TensorRT needs an NVIDIA GPU and CUDA"),
        FormatSupport(
            "coreml",
            "coreml",
            ("coremltools",),
            ("coremltools",),
            note="Core ML models run (predict, val) on macOS only; export works on Linux (docs/formats.md matrix)",
        ),
        FormatSupport(
            "coreai", None, ("coreai_torch",), ("coreai_torch",), note="Core AI models run on Apple devices only"
        ),
        FormatSupport(
            "saved_model",
            "tensorflow",
            ("tensorflow", "onnx2tf", "tf_keras"),
            ("tensorflow",),
            note="tensorflow<=2.19 is a 645 MB wheel (Ultralytics also pins numpy<2 for it): too big for CI",
        ),
        FormatSupport(
            "pb", "tensorflow", ("tensorflow", "onnx2tf", "tf_keras"), ("tensorflow",), note="as saved_model"
        ),
        FormatSupport(
            "edgetpu",
            "tensorflow",
            ("tensorflow", "onnx2tf", "tf_keras"),
            ("ai_edge_litert",),
            note="as saved_model, plus Google's edgetpu_compiler (a Debian package from Google's apt server)",
        ),
        FormatSupport(
            "litert",
            "tflite",
            ("litert_torch", "ai_edge_litert"),
            ("ai_edge_litert",),
            note="litert-torch pulls jax, transformers and an older typing-extensions: not in the dev environment",
        ),
        FormatSupport(
            "paddle",
            "paddle",
            ("paddle", "x2paddle"),
            ("paddle",),
            note="paddlepaddle is a 189 MB wheel (700 MB installed); runs in the docs/formats.md matrix",
        ),
        FormatSupport("mnn", "mnn", ("onnx", "onnxslim", "MNN"), ("MNN",), tested=True),
        FormatSupport("ncnn", "ncnn", ("ncnn", "pnnx"), ("ncnn",), tested=True),
        FormatSupport(
            "imx",
            None,
            ("model_compression_toolkit",),
            ("model_compression_toolkit",),
            note="Sony IMX500 toolchain; Ultralytics needs torch<2.12 for it",
        ),
        FormatSupport("rknn", None, ("rknn",), ("rknn",), note="Rockchip toolkit; Ultralytics pins torch==2.4 for it"),
        FormatSupport(
            "executorch",
            "executorch",
            ("executorch",),
            ("executorch",),
            note="executorch pulls pandas, hydra and coremltools; Ultralytics pins numpy<=2.3.5 for it",
        ),
        FormatSupport("axelera", None, (), (), note="Axelera SDK comes from Axelera's own package index, not PyPI"),
        FormatSupport(
            "deepx", None, ("dx_com",), ("dx_com",), note="DEEPX compiler; Ultralytics needs torch<2.12 for it"
        ),
        FormatSupport(
            "qnn",
            None,
            ("onnxruntime",),
            ("onnxruntime",),
            note="needs onnxruntime-qnn (99 MB, not an extra) and a Qualcomm device to run on",
        ),
        FormatSupport("hailo", None, (), (), note="Hailo Dataflow Compiler is not on PyPI (Hailo developer zone)"),
        FormatSupport("ascend", None, (), (), note="needs Huawei's CANN toolkit and an Ascend NPU"),
        FormatSupport("xilinx", None, ("quark",), ("quark",), note="needs AMD Quark and a Xilinx/Versal target"),
    )
}
# Every format of the installed Ultralytics' exporter, in its order; one lcnet-yolo does not describe yet needs
# nothing we know of and is marked untested.
FORMATS: dict[str, FormatSupport] = {
    name: _SUPPORT.get(name) or FormatSupport(name, None, (), (), note="not described by lcnet-yolo yet")
    for name in export_format_names()
}
# ``format=`` aliases (``tflite`` -> ``litert``) and path endings (``_ncnn_model`` -> ``ncnn``) as Ultralytics has them
ALIASES = export_format_aliases()
RUNTIME_SUFFIXES = export_suffixes()


def is_installed(module: str) -> bool:
    """Whether ``module`` can be imported, without importing it."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def install_hint(module: str) -> str:
    """How to install the package providing ``module``: our extra where we have one, else the PyPI package."""
    package, extra = PACKAGES.get(module, (module, None))
    if extra:
        return f"pip install 'lcnet-yolo[{extra}]'"
    return f"pip install {package} (not one of lcnet-yolo's extras; see docs/formats.md)"


def missing_package_message(module: str, purpose: str) -> str:
    """One line: ``format 'ncnn' needs the package 'ncnn': pip install 'lcnet-yolo[ncnn]'``."""
    package = PACKAGES.get(module, (module, None))[0]
    return f"{purpose} needs the package '{package}': {install_hint(module)}"


def message_for(error: ModuleNotFoundError, purpose: str = "this command") -> str:
    """The one-line message for a ``ModuleNotFoundError`` raised anywhere below Ultralytics."""
    module = (error.name or str(error).rsplit(" ", 1)[-1].strip("'\"")).split(".")[0]
    return missing_package_message(module, purpose)


def _require(modules: tuple[str, ...], purpose: str) -> None:
    for module in modules:
        if not is_installed(module):
            raise MissingPackageError(missing_package_message(module, purpose))


def canonical_format(fmt: str) -> str:
    """Ultralytics' name for a ``format=`` value (``tflite`` -> ``litert``), lower case."""
    fmt = str(fmt).lower()
    return ALIASES.get(fmt, fmt)


def _quantize(overrides: dict[str, Any]) -> int | str | None:
    """The precision an argument set asks for, as Ultralytics reads it (``quantize=``, or legacy ``int8``/``half``)."""
    if overrides.get("quantize") is not None:
        value = str(overrides["quantize"]).lower()
        return {"int8": 8, "8": 8, "fp16": 16, "16": 16, "half": 16}.get(value, overrides["quantize"])
    if overrides.get("int8"):
        return 8
    if overrides.get("half"):
        return 16
    return None


def require_export(fmt: str, **export_args: Any) -> None:
    """Raise :class:`MissingPackageError` if ``model.export(format=fmt, **export_args)`` lacks a package."""
    fmt = canonical_format(fmt)
    support = FORMATS.get(fmt)
    if support is None:
        return  # Ultralytics reports unknown formats itself
    modules = support.export
    quantize = _quantize(export_args)
    if fmt == "onnx" and quantize in (8, 16):
        modules = (*modules, "onnxruntime")  # int8 calibration and the CPU fp16 converter come from onnxruntime
    if fmt == "openvino" and quantize == 8:
        modules = (*modules, "nncf")
    purpose = f"format '{fmt}'" + (" with int8" if quantize == 8 else "")
    _require(modules, purpose)


def exported_format(model: str | Path) -> str | None:
    """The export format of a model file or folder, from its name (``best_ncnn_model`` -> ``ncnn``; the longest
    ending that fits: ``best_qnn.onnx`` -> ``qnn``); else None."""
    name = str(model).rstrip("/\\")
    endings = [suffix for suffix in RUNTIME_SUFFIXES if name.endswith(suffix)]
    return RUNTIME_SUFFIXES[max(endings, key=len)] if endings else None


def require_runtime(model: str | Path) -> None:
    """Raise :class:`MissingPackageError` if predict/val on the exported ``model`` lacks its runtime package."""
    fmt = exported_format(model)
    if fmt is not None:
        _require(FORMATS[fmt].runtime, f"running a {fmt} model")


def require_track() -> None:
    """Raise :class:`MissingPackageError` if Ultralytics' trackers (ByteTrack, BoT-SORT) lack ``lap``."""
    _require(("lap",), "tracking")


def _size_pair(imgsz: Any) -> tuple[int, int]:
    if isinstance(imgsz, str):
        imgsz = [int(v) for v in imgsz.strip("[]() ").replace(",", " ").split()]
    if isinstance(imgsz, (int, float)):
        return int(imgsz), int(imgsz)
    values = [int(v) for v in imgsz]
    return (values[0], values[0]) if len(values) == 1 else (values[0], values[1])


def check_mode(mode: str, model: str | Path, overrides: dict[str, Any], task: str | None = None) -> str | None:
    """Checks before a CLI mode starts: packages (one line naming the extra), task and input size of exports.

    Returns the task to load ``model`` with: ``task``, or the task recorded in an exported model's metadata.
    Raises :class:`MissingPackageError` or ``ValueError`` with a one-line message.
    """
    if mode == "export":
        require_export(str(overrides.get("format", "torchscript")), **overrides)
    if mode in {"predict", "val", "track"}:
        require_runtime(model)
    if mode == "track":
        require_track()
    if exported_format(model) is None:
        return task
    metadata = exported_metadata(model) or {}
    exported_task = metadata.get("task")
    if task and exported_task and task != exported_task:
        raise ValueError(f"{model} is a {exported_task} model, not a {task} model")
    if mode in {"predict", "val", "track"} and "imgsz" in overrides and "imgsz" in metadata:
        dynamic = (metadata.get("args") or {}).get("dynamic", False)
        fixed, asked = _size_pair(metadata["imgsz"]), _size_pair(overrides["imgsz"])
        if not dynamic and fixed != asked:
            raise ValueError(
                f"{model} was exported for a fixed {fixed[0]}x{fixed[1]} input, not imgsz={overrides['imgsz']}: "
                f"leave imgsz out, or export again with imgsz={overrides['imgsz']} or dynamic=True"
            )
    return task or exported_task


def check_model(model: Any, path: str | Path, task: str | None) -> None:
    """``ValueError`` if a loaded checkpoint is of another task than the one asked for (``lcnet-yolo detect ...``)."""
    if task and getattr(model, "task", task) != task:
        raise ValueError(f"{path} is a {model.task} model, not a {task} model")


def support_markdown() -> str:
    """Every Ultralytics export format: the lcnet-yolo extra that installs it, tested or why not."""
    lines = ["| format | install | in the test suite (CI) |", "|---|---|---|"]
    for support in FORMATS.values():
        install = f"`lcnet-yolo[{support.extra}]`" if support.extra else ("core" if support.tested else "—")
        tested = "yes: export, predict, val" if support.tested else f"no: {support.note}"
        lines.append(f"| `{support.name}` | {install} | {tested} |")
    return "\n".join(lines)
