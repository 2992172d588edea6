"""Inference engines behind one small interface: ONNX Runtime (always) and OpenVINO (the ``[openvino]`` extra).

A backend loads the model, reports its metadata and input shape, and maps a float32 NCHW array to the first output.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np

from lcnet_yolo_runtime.errors import InputError


class Backend(Protocol):
    metadata: dict[str, Any]
    input_hw: tuple[int | None, int | None]  # None where the export is dynamic

    def __call__(self, tensor: np.ndarray) -> np.ndarray: ...


def _dimension(value: Any) -> int | None:
    return value if isinstance(value, int) and value > 0 else None


def _check_batch_and_channels(path: Path, batch: int | None, channels: int | None) -> None:
    """The runtime feeds one RGB image at a time."""
    if batch not in (None, 1):
        raise InputError(f"{path} was exported for batches of {batch}; re-export it with batch=1 (or dynamic=True)")
    if channels not in (None, 3):
        raise InputError(f"{path} takes {channels}-channel input; the runtime feeds RGB images (3 channels)")


class OnnxRuntimeBackend:
    """An ``.onnx`` file on ONNX Runtime's CPU execution provider."""

    def __init__(self, path: Path, threads: int | None = None) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        try:
            self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as error:  # ONNX Runtime raises its own exception types for unparsable files
            first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise InputError(f"{path} is not a loadable ONNX model ({first_line[:200]})") from None
        self.input = self.session.get_inputs()[0]
        self.half = "float16" in self.input.type
        shape = list(self.input.shape)
        if len(shape) != 4:
            raise InputError(f"{path} takes a {len(shape)}-D input {shape}; a detector takes images (1, 3, H, W)")
        _check_batch_and_channels(path, _dimension(shape[0]), _dimension(shape[1]))
        self.input_hw = (_dimension(shape[2]), _dimension(shape[3]))
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)

    def __call__(self, tensor: np.ndarray) -> np.ndarray:
        if self.half:
            tensor = tensor.astype(np.float16)
        return self.session.run(None, {self.input.name: tensor})[0].astype(np.float32, copy=False)


class OpenVINOBackend:
    """An OpenVINO IR: an ``*_openvino_model/`` folder or its ``.xml`` (metadata from ``metadata.yaml`` beside it)."""

    def __init__(self, path: Path, threads: int | None = None) -> None:
        try:
            import openvino
        except ImportError:
            raise InputError(
                f"{path} is an OpenVINO model; install the extra: pip install 'lcnet-yolo-runtime[openvino]'"
            ) from None
        xml = path if path.suffix == ".xml" else next(iter(sorted(path.glob("*.xml"))), None)
        if xml is None:
            raise InputError(f"{path} holds no OpenVINO .xml model")
        core = openvino.Core()
        config = {"INFERENCE_PRECISION_HINT": "f32"}
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        try:
            model = core.read_model(str(xml))
            self.compiled = core.compile_model(model, "CPU", config)
        except Exception as error:
            raise InputError(f"{xml} is not a loadable OpenVINO model ({str(error).strip()[:200]})") from None
        shape = model.inputs[0].get_partial_shape()
        if shape.rank.get_length() != 4:
            raise InputError(f"{xml} takes a {shape.rank.get_length()}-D input; a detector takes (1, 3, H, W)")
        batch, channels, *hw = (d.get_length() if d.is_static else None for d in shape)
        _check_batch_and_channels(xml, batch, channels)
        self.input_hw = tuple(hw)
        self.metadata = self._sidecar(xml.parent / "metadata.yaml")

    @staticmethod
    def _sidecar(path: Path) -> dict[str, Any]:
        if not path.is_file():
            return {}
        import yaml

        data = yaml.safe_load(path.read_text())
        return data if isinstance(data, dict) else {}

    def __call__(self, tensor: np.ndarray) -> np.ndarray:
        return np.asarray(self.compiled(tensor)[self.compiled.output(0)], dtype=np.float32)


def load_backend(path: str | Path, threads: int | None = None) -> Backend:
    """The backend that runs ``path``: ``.onnx`` on ONNX Runtime, an OpenVINO folder or ``.xml`` on OpenVINO."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"model {path} does not exist")
    if path.is_dir() or path.suffix == ".xml":
        return OpenVINOBackend(path, threads)
    if path.suffix != ".onnx":
        raise InputError(
            f"{path} is not an exported model; lcnet-yolo-infer runs .onnx files and OpenVINO folders "
            "(export one with: yolo export model=best.pt format=onnx)"
        )
    return OnnxRuntimeBackend(path, threads)
