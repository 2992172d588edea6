"""Weights files of any kind, checked and opened through one door.

* :func:`load_yolo` gives a ready ``YOLO`` object from a ``.pt`` (read by :func:`lcnet_yolo.io.safe_load.safe_load`
  first), ``.safetensors`` (:func:`lcnet_yolo.io.safetensors.load_safetensors`) or ``.onnx`` file, without
  executing code from the file.
* :func:`verify_file` checks that a weights file (``.pt``, ``.safetensors``, ``.onnx``, ``.pdparams``) is whole and
  raises one :class:`~lcnet_yolo.io.errors.WeightsError` naming the file when it is not.
"""

from __future__ import annotations

from pathlib import Path

from lcnet_yolo.io.errors import existing_file, file_error, short_reason
from lcnet_yolo.io.model_yaml import check_model_yaml_file
from lcnet_yolo.io.safe_load import check_checkpoint_yamls, restricted_loading, safe_load
from lcnet_yolo.io.safetensors import load_safetensors, read_safetensors
from lcnet_yolo.io.weight_files import read_pdparams

__all__ = ["load_yolo", "verify_file"]


def load_yolo(path: str | Path, task: str | None = None):
    """A ``YOLO`` model from a weights file or model YAML, loaded without executing code from the file.

    ``.pt`` files are opened by ``YOLO`` under :func:`restricted_loading`, which reads them through
    :func:`safe_load` (the trust boundary) and hands Ultralytics only the usable ``train_args``; a bare name that
    is not a local file (an official Ultralytics asset) goes the same way. Model YAMLs (``.yaml``/``.yml``) pass
    :func:`~lcnet_yolo.io.model_yaml.check_model_yaml_file` before ``YOLO`` builds them. ``.safetensors`` files go
    to :func:`load_safetensors`, ``.onnx`` files are checked by :func:`verify_file`; export folders go to ``YOLO``.
    """
    from ultralytics import YOLO

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        return load_safetensors(path)
    if suffix == ".onnx":
        verify_file(path)
    if suffix in (".yaml", ".yml"):
        check_model_yaml_file(path)
    if suffix != ".pt":
        with restricted_loading():
            return YOLO(str(path), task=task)
    with restricted_loading():
        yolo = YOLO(str(path), task=task)
    check_checkpoint_yamls(path, {"model": yolo.model})
    return yolo


def verify_file(path: str | Path) -> str:
    """Check that a weights file is complete and readable; return its format (``pt``, ``safetensors``, ...).

    ``.pt`` goes through :func:`safe_load`, ``.safetensors`` through ``safe_open`` (all tensors are read),
    ``.onnx`` through :func:`_check_onnx`, ``.pdparams`` through :func:`lcnet_yolo.io.weights.read_pdparams`.

    Raises:
        WeightsError: one line, naming the file and what is wrong with it.
    """
    path = existing_file(path)
    suffix = path.suffix.lower()
    if suffix == ".pt":
        safe_load(path)
        return "pt"
    if suffix == ".safetensors":
        read_safetensors(path)
        return "safetensors"
    if suffix == ".onnx":
        _check_onnx(path)
        return "onnx"
    if suffix == ".pdparams":
        try:
            read_pdparams(path)  # arrays-only unpickler: refuses any other global before calling it
        except Exception as error:  # WeightsError: already one line naming the file
            message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            message = message.replace(f"cannot read {path}: ", "").replace(f"refusing to load {path}: ", "refused: ")
            raise file_error(path, message.replace(str(path), "the file")) from None
        return "pdparams"
    known = ".pt, .safetensors, .onnx or .pdparams"
    raise file_error(path, f"unknown weights format {suffix or '(no suffix)'!r}; expected {known}")


def _check_onnx(path: Path) -> None:
    """An ONNX file is usable when ONNX Runtime, which runs it for Ultralytics, builds a session from it.

    ONNX's own checker is stricter than the runtimes: it requires nodes in topological order, which the FP16
    conversion of ``half=True`` exports does not keep, though ONNX Runtime sorts the graph itself. Without
    onnxruntime the file is parsed with ``onnx.load`` and checked by ONNX's checker, whose complaint about node
    order alone is not counted as damage.
    """
    try:
        import onnxruntime
    except ImportError:
        onnxruntime = None
    try:
        if onnxruntime is not None:
            options = onnxruntime.SessionOptions()
            options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
            options.log_severity_level = 4  # errors come back as exceptions; nothing printed
            options.intra_op_num_threads = 1
            onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        else:
            import onnx

            try:
                onnx.checker.check_model(onnx.load(str(path)))
            except onnx.checker.ValidationError as error:
                if "topologically sorted" not in str(error):
                    raise
    except ImportError:
        raise file_error(
            path, "cannot check an ONNX model without onnxruntime or onnx (pip install onnxruntime)"
        ) from None
    except Exception as error:  # InvalidProtobuf, Fail, DecodeError, ValidationError, ...: the same to a user
        raise file_error(path, f"not a readable ONNX model: truncated or corrupted ({short_reason(error)})") from None
