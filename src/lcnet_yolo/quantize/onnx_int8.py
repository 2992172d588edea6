"""ONNX Runtime static int8 quantization of an Ultralytics ONNX export, with hardswish as uint8 lookups.

:func:`quantize_onnx_int8` runs ``quant_pre_process`` and ``quantize_static`` (QDQ, per-channel int8 weights, uint8
activations) calibrated on letterboxed training images, keeps Detect's box decoding (:func:`decoding_nodes`) and,
optionally, the stem (:func:`thin_front_nodes`) in float, then rewrites every ``DQ -> HardSigmoid -> Q`` into a
uint8 table lookup (:func:`hardsigmoid_as_lookup`): without that each hardswish is a dequantize, a float
HardSigmoid and a quantize, and the int8 model is slower than fp32.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lcnet_yolo.plugin.compat import detect_decoding_nodes
from lcnet_yolo.quantize.calibration import letterboxed

__all__ = ["CALIBRATIONS", "decoding_nodes", "hardsigmoid_as_lookup", "quantize_onnx_int8", "thin_front_nodes"]

# ONNX Runtime's calibrators for the activation ranges: our name -> its CalibrationMethod member
_CALIBRATORS = {"minmax": "MinMax", "percentile": "Percentile", "entropy": "Entropy"}
CALIBRATIONS = tuple(_CALIBRATORS)

# Elementwise nodes an activation is exported as (hardswish inlined as HardSigmoid and Mul, SiLU as Sigmoid and Mul).
_ACTIVATIONS = {"Clip", "HardSigmoid", "HardSwish", "LeakyRelu", "Mul", "Relu", "Sigmoid"}


def decoding_nodes(model) -> list[str]:
    """Names of the ONNX nodes of Detect's box decoding (everything of the last layer but its conv branches).

    They stay in float: Detect concatenates pixel coordinates with 0..1 scores, one int8 scale cannot hold both.
    """
    return detect_decoding_nodes(node.name for node in model.graph.node)


def name_unnamed_nodes(model) -> None:
    """Give every unnamed node its first output's name, so that it can be excluded from quantization by name
    (ONNX Runtime's optimizer inlines HardSwish into a HardSigmoid and a Mul without names)."""
    for node in model.graph.node:
        if not node.name:
            node.name = node.output[0]


def thin_front_nodes(model, min_channels: int = 16) -> list[str]:
    """Names of the nodes from the image to the first convolution that is neither a stem conv (reading the image)
    nor a depthwise conv of fewer than ``min_channels`` channels, with their activations.

    PP-LCNet x0.5 starts with 8 channels at half resolution (stem and the first depthwise conv): ONNX Runtime's
    int8 depthwise kernel is slower than its fp32 one on so few channels (the 8-channel 3x3 depthwise conv at
    320 x 320: 4.1 ms in int8, 1.6 ms in fp32, 1 thread), and there the int8 model would pay a quantize as well.
    Keeping this front in float moves the first quantize behind it.
    """
    image = model.graph.input[0].name
    initializers = {t.name for t in model.graph.initializer}
    front: set[str] = {image}
    names = []
    for node in model.graph.node:
        inputs = [i for i in node.input if i and i not in initializers]
        if not inputs or not all(i in front for i in inputs):
            continue
        groups = next((a.i for a in node.attribute if a.name == "group"), 1)
        if node.op_type == "Conv":
            if image not in node.input and not 1 < groups < min_channels:
                continue
        elif node.op_type not in _ACTIVATIONS:
            continue
        names.append(node.name)
        front.update(node.output)
    return names


def _initializer(model, name: str) -> np.ndarray:
    from onnx import numpy_helper

    for tensor in model.graph.initializer:
        if tensor.name == name:
            return numpy_helper.to_array(tensor)
    raise KeyError(name)


def hardsigmoid_as_lookup(model) -> int:
    """Rewrite ``DQ -> HardSigmoid -> Q`` of a QDQ model so that ONNX Runtime runs it on uint8; return how many.

    ONNX Runtime has no int8 hardswish; after its optimizer inlines ``HardSwish(x) = x * HardSigmoid(x)`` the
    quantizer leaves HardSigmoid in float, between a dequantize and a quantize: three passes over every
    feature map in float. HardSigmoid is ``clip(a*x + b, 0, 1)``, an affine map of ``c = clip(x, -b/a, (1-b)/a)``.
    ``c`` is an identity LeakyRelu (alpha 1) quantized with scale ``1/(255a)`` and zero point ``255b`` (the
    quantizer's saturation does the clipping), which ONNX Runtime fuses into one uint8 table lookup
    (QLinearLeakyRelu); the same uint8 codes, read with scale 1/255 and zero point 0, are HardSigmoid's output
    (exact up to half a code when ``255b`` is not an integer). The Mul that follows stays an int8 QLinearMul.
    """
    from onnx import helper, numpy_helper

    producers = {out: node for node in model.graph.node for out in node.output}
    consumers: dict[str, list] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    rewritten = 0
    for node in list(model.graph.node):
        if node.op_type != "HardSigmoid":
            continue
        dq = producers.get(node.input[0])
        after = consumers.get(node.output[0], [])
        if dq is None or dq.op_type != "DequantizeLinear" or len(after) != 1 or after[0].op_type != "QuantizeLinear":
            continue
        q = after[0]
        readers = consumers.get(q.output[0], [])
        if not readers or any(r.op_type != "DequantizeLinear" for r in readers):
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        alpha, beta = float(attrs.get("alpha", 0.2)), float(attrs.get("beta", 0.5))
        zero_type = _initializer(model, q.input[2]).dtype if len(q.input) > 2 else np.dtype(np.uint8)
        if zero_type != np.uint8 or alpha <= 0:
            continue
        tag = node.name or node.output[0]
        names = {k: f"{tag}_lookup_{k}" for k in ("clip_scale", "clip_zero", "hsig_scale", "hsig_zero")}
        model.graph.initializer.extend(
            [
                numpy_helper.from_array(np.array(1.0 / (255.0 * alpha), np.float32), names["clip_scale"]),
                numpy_helper.from_array(np.array(round(255.0 * beta), np.uint8), names["clip_zero"]),
                numpy_helper.from_array(np.array(1.0 / 255.0, np.float32), names["hsig_scale"]),
                numpy_helper.from_array(np.array(0, np.uint8), names["hsig_zero"]),
            ]
        )
        node.op_type = "LeakyRelu"
        del node.attribute[:]
        node.attribute.append(helper.make_attribute("alpha", 1.0))
        q.input[1:] = [names["clip_scale"], names["clip_zero"]]
        for reader in readers:
            reader.input[1:] = [names["hsig_scale"], names["hsig_zero"]]
        rewritten += 1
    _drop_unused_initializers(model)
    return rewritten


def _drop_unused_initializers(model) -> None:
    used = {name for node in model.graph.node for name in node.input} | {o.name for o in model.graph.output}
    keep = [t for t in model.graph.initializer if t.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(keep)


def quantize_onnx_int8(
    fp32_onnx: str | Path,
    out: str | Path,
    calibration_images: Sequence[str | Path],
    *,
    hardswish_lookup: bool = True,
    float_stem: bool = True,
    float_nodes: Sequence[str] = (),
    per_channel: bool = True,
    calibration: str = "percentile",
    op_types: Sequence[str] | None = None,
    extra_options: dict | None = None,
) -> Path:
    """ONNX Runtime static int8 quantization of an Ultralytics ONNX export; returns ``out``.

    QDQ format, per-channel int8 weights, uint8 activations, calibrated on ``calibration_images`` letterboxed to the
    model's input size. Activation ranges: ``calibration="percentile"`` (99.999th percentile of each tensor's
    values; default) tolerates outliers, which min/max (``"minmax"``) lets stretch a range (BENCHMARKS.md, "int8
    accuracy of the 300-epoch weights"); ``"entropy"`` is ONNX Runtime's third calibrator. Where ONNX Runtime cannot
    build a tensor's histogram (a constant tensor, as in a barely trained model) the model falls back to min/max,
    with a warning. The model is first pre-processed (``quant_pre_process``: ONNX Runtime's basic optimizations,
    which fold constants and inline HardSwish into HardSigmoid and Mul; unnamed nodes get their first output's
    name). Detect's box decoding and ``float_nodes`` (node names of the pre-processed model) stay in float, and with
    ``float_stem`` the stem (:func:`thin_front_nodes`: the convs that read the image, the depthwise convs of fewer
    than 16 channels right behind them, their activations): ONNX Runtime's fp32 kernels are faster there than its
    int8 ones, and the image needs no quantize. With ``hardswish_lookup`` every HardSigmoid between quantized
    tensors becomes a uint8 table lookup (:func:`hardsigmoid_as_lookup`). Ultralytics' metadata is carried over so
    ``YOLO(out)`` loads a detector.
    """
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if calibration not in _CALIBRATORS:
        raise ValueError(f"unknown calibration {calibration!r}; choose from {', '.join(CALIBRATIONS)}")
    fp32_onnx, out = Path(fp32_onnx), Path(out)
    images = [Path(p) for p in calibration_images]
    if not images:
        raise ValueError("quantize_onnx_int8 needs at least one calibration image")
    original = onnx.load(str(fp32_onnx))
    input_name = original.graph.input[0].name
    height, width = (d.dim_value for d in original.graph.input[0].type.tensor_type.shape.dim[2:])
    if not height or not width:
        raise ValueError(f"{fp32_onnx} has a dynamic input size; export it with a fixed imgsz (dynamic=False)")

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.files = iter(images)

        def get_next(self) -> dict | None:
            path = next(self.files, None)
            return None if path is None else {input_name: letterboxed(path, height, width)}

    out.parent.mkdir(parents=True, exist_ok=True)
    prepared = out.with_suffix(".prep.onnx")
    try:
        quant_pre_process(str(fp32_onnx), str(prepared), skip_symbolic_shape=True)
        model = onnx.load(str(prepared))
        name_unnamed_nodes(model)
        onnx.save(model, str(prepared))
        stem = thin_front_nodes(model) if float_stem else []
        exclude = decoding_nodes(model) + stem + list(float_nodes)

        def run(method: str) -> None:
            quantize_static(
                str(prepared),
                str(out),
                Reader(),
                quant_format=QuantFormat.QDQ,
                op_types_to_quantize=list(op_types) if op_types else None,
                nodes_to_exclude=exclude,
                per_channel=per_channel,
                calibrate_method=getattr(CalibrationMethod, _CALIBRATORS[method]),
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                extra_options=extra_options or {},
            )

        try:
            run(calibration)
        except ValueError as error:  # ONNX Runtime's histogram of a constant tensor (e.g. a dead activation)
            if calibration == "minmax" or "bins" not in str(error):
                raise
            warnings.warn(
                f"{calibration} calibration failed ({error}); calibrating {fp32_onnx.name} by min/max", stacklevel=2
            )
            run("minmax")
    finally:
        prepared.unlink(missing_ok=True)
    quantized = onnx.load(str(out))
    if hardswish_lookup:
        hardsigmoid_as_lookup(quantized)
    del quantized.metadata_props[:]
    quantized.metadata_props.extend(original.metadata_props)
    onnx.save(quantized, str(out))
    return out
