"""Inference engines behind one small interface: ONNX Runtime (always) and OpenVINO (the ``[openvino]`` extra).

A backend loads the model, reports its metadata and input shape, and maps a float32 NCHW array to the first output.
"""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from lcnet_yolo_runtime.errors import InputError


class Backend(Protocol):
    metadata: dict[str, Any]
    input_hw: tuple[int | None, int | None]  # None where the export is dynamic

    def __call__(self, tensor: np.ndarray) -> np.ndarray: ...


FLOAT_INPUTS = ("tensor(float)", "tensor(float16)")  # the runtime feeds float32 (cast to float16 for a half export)
MAX_SIDECAR_BYTES = 1 << 20


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return (text.splitlines()[0] if text else type(error).__name__)[:200]


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
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1 or not outputs:
            raise InputError(
                f"{path} has {len(inputs)} inputs and {len(outputs)} outputs; a detector has one image input"
            )
        self.path, self.input = path, inputs[0]
        if self.input.type not in FLOAT_INPUTS:
            raise InputError(f"{path} takes {self.input.type} input; the runtime feeds float images (float32/16)")
        self.half = self.input.type == "tensor(float16)"
        shape = list(self.input.shape)
        if len(shape) != 4:
            raise InputError(f"{path} takes a {len(shape)}-D input {shape}; a detector takes images (1, 3, H, W)")
        _check_batch_and_channels(path, _dimension(shape[0]), _dimension(shape[1]))
        self.input_hw = (_dimension(shape[2]), _dimension(shape[3]))
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)
        self.output_shape = tuple(_dimension(d) for d in outputs[0].shape)

    def __call__(self, tensor: np.ndarray) -> np.ndarray:
        if self.half:
            tensor = tensor.astype(np.float16)
        try:
            output = self.session.run(None, {self.input.name: tensor})[0]
        except Exception as error:  # a node that fails at run time (ONNX Runtime's own exception types)
            raise InputError(f"{self.path} failed to run ({_first_line(error)})") from None
        return np.asarray(output).astype(np.float32, copy=False)


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
        for part in (xml, xml.with_suffix(".bin")):
            if part.exists() and not stat.S_ISREG(part.stat().st_mode):
                raise InputError(f"{part} is not a regular file (a device or a pipe?)")
        self.metadata = read_sidecar(xml.parent / "metadata.yaml")  # before the model: nothing runs on bad metadata
        core = openvino.Core()
        config = {"INFERENCE_PRECISION_HINT": "f32"}
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        try:
            model = core.read_model(str(xml))
            self.compiled = core.compile_model(model, "CPU", config)
        except Exception as error:
            raise InputError(f"{xml} is not a loadable OpenVINO model ({_first_line(error)})") from None
        if len(model.inputs) != 1 or not model.outputs:
            raise InputError(f"{xml} has {len(model.inputs)} inputs; a detector has one image input")
        if model.inputs[0].get_element_type().get_type_name() not in ("f32", "f16"):
            raise InputError(f"{xml} takes {model.inputs[0].get_element_type()} input; the runtime feeds float images")
        self.path = xml
        shape = model.inputs[0].get_partial_shape()
        if shape.rank.get_length() != 4:
            raise InputError(f"{xml} takes a {shape.rank.get_length()}-D input; a detector takes (1, 3, H, W)")
        batch, channels, *hw = (d.get_length() if d.is_static else None for d in shape)
        _check_batch_and_channels(xml, batch, channels)
        self.input_hw = tuple(hw)
        output = model.outputs[0].get_partial_shape()
        self.output_shape = (
            tuple(d.get_length() if d.is_static else None for d in output) if output.rank.is_static else ()
        )

    def __call__(self, tensor: np.ndarray) -> np.ndarray:
        try:
            return np.asarray(self.compiled(tensor)[self.compiled.output(0)], dtype=np.float32)
        except Exception as error:
            raise InputError(f"{self.path} failed to run ({_first_line(error)})") from None


def read_sidecar(path: Path) -> dict[str, Any]:
    """An OpenVINO export's ``metadata.yaml`` as a dict ({} when there is none): a regular UTF-8 file of plain YAML
    (``yaml.safe_load``: a ``!!python/...`` tag is refused, never constructed); else :class:`InputError`."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return {}
    except OSError as error:
        raise InputError(f"{path} cannot be read ({error.strerror or error})") from None
    if stat.S_ISLNK(mode):
        mode = path.stat().st_mode if path.exists() else 0
    if not stat.S_ISREG(mode):
        raise InputError(f"{path} is not a regular file (a metadata.yaml is a text file)")
    import yaml

    try:
        if path.stat().st_size > MAX_SIDECAR_BYTES:
            raise InputError(f"{path} is {path.stat().st_size} bytes, too large for export metadata")
        data = yaml.safe_load(path.read_bytes().decode("utf-8"))
    except OSError as error:
        raise InputError(f"{path} cannot be read ({error.strerror or error})") from None
    except UnicodeDecodeError as error:
        raise InputError(f"{path} is not UTF-8 text (byte {error.start})") from None
    except yaml.constructor.ConstructorError as error:
        tag = "a Python tag (!!python/...), refused" if "python/" in str(error) else "an unsupported YAML tag"
        raise InputError(f"{path} holds {tag}: {_first_line(error)}") from None
    except yaml.YAMLError as error:
        where = getattr(error, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        raise InputError(
            f"{path} is not valid YAML{line} ({getattr(error, 'problem', None) or 'unreadable'})"
        ) from None
    except (ValueError, TypeError, RecursionError) as error:
        raise InputError(f"{path} is unreadable YAML ({type(error).__name__})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InputError(f"{path} holds a {type(data).__name__}, not a mapping of metadata keys")
    return data


def load_backend(path: str | Path, threads: int | None = None) -> Backend:
    """The backend that runs ``path``: ``.onnx`` on ONNX Runtime, an OpenVINO folder or ``.xml`` on OpenVINO."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"model {path} does not exist")
    if not path.is_dir() and not stat.S_ISREG(path.stat().st_mode):
        raise InputError(f"model {path} is not a regular file or folder (a device or a pipe?)")
    if path.is_dir() or path.suffix == ".xml":
        return OpenVINOBackend(path, threads)
    if path.suffix != ".onnx":
        raise InputError(
            f"{path} is not an exported model; lcnet-yolo-infer runs .onnx files and OpenVINO folders "
            "(export one with: yolo export model=best.pt format=onnx)"
        )
    return OnnxRuntimeBackend(path, threads)
