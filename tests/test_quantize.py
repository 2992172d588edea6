"""int8 quantization (lcnet_yolo.quantize): the int8 files run, stay close to fp32, and have the intended graph."""

from __future__ import annotations

import collections
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from lcnet_yolo import quantize

IMGSZ = 64


def _randomize(model: torch.nn.Module, seed: int = 0) -> None:
    """Random convolutions and BatchNorm statistics: at Ultralytics' initialisation Detect's outputs do not
    depend on the input, which would make any int8 copy look exact."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.Conv2d):
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * (2.0 / m.weight[0].numel()) ** 0.5)
                if m.bias is not None:
                    m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
            elif isinstance(m, torch.nn.BatchNorm2d):
                m.weight.copy_(0.5 + torch.rand(m.weight.shape, generator=g))
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
                m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=g))


@pytest.fixture(scope="session")
def tiny(tmp_path_factory) -> dict:
    """The default n model (random init, 1 class) exported at 64 px, a synthetic dataset, and an int8 copy."""
    from lcnet_yolo.data import make_synthetic_dataset

    root = tmp_path_factory.mktemp("quantize")
    data_yaml = make_synthetic_dataset(root / "data", n_train=8, n_val=2, imgsz=IMGSZ, seed=0)
    images = quantize.calibration_images(data_yaml, 8)
    yolo = quantize.build_yolo("yolov8n-pplcnet", nc=1)
    _randomize(yolo.model)
    fp32 = quantize.export_onnx(yolo, IMGSZ, root / "fp32.onnx")
    int8 = quantize.quantize_onnx_int8(fp32, root / "int8.onnx", images)
    return {"root": root, "data": data_yaml, "images": images, "yolo": yolo, "fp32": fp32, "int8": int8}


def test_val_map_keeps_its_run_folder_beside_the_model(tiny, isolated_dir):
    runs = isolated_dir / "runs"
    before = sorted(runs.rglob("*")) if runs.exists() else []
    scores = quantize.val_map(tiny["fp32"], tiny["data"], IMGSZ)
    assert set(scores) == {"map50", "map50_95"} and all(0.0 <= v <= 1.0 for v in scores.values())
    assert (sorted(runs.rglob("*")) if runs.exists() else []) == before  # nothing in Ultralytics' runs folder
    assert (tiny["root"] / "fp32-val").is_dir()


def _optimized(path: Path, dest: Path) -> onnx.ModelProto:
    """The graph ONNX Runtime actually runs (all optimizations, QDQ fused into QLinear ops)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = str(dest)
    ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return onnx.load(str(dest))


def _run(path: Path, x: np.ndarray) -> np.ndarray:
    session = quantize.onnxruntime_session(path, threads=2)
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def test_int8_model_runs_close_to_fp32_on_a_calibration_image(tiny):
    x = quantize.letterboxed(tiny["images"][0], IMGSZ, IMGSZ)
    fp32, int8 = _run(tiny["fp32"], x), _run(tiny["int8"], x)
    assert int8.shape == fp32.shape == (1, 5, 84)  # 4 box values + 1 class, 8² + 4² + 2² anchors
    error = np.abs(int8 - fp32)
    # Measured on this model and input: boxes within 0.2 px (at 64 px), scores within 0.004.
    assert error[:, :4].max() < 1.0, error[:, :4].max()
    assert error[:, 4:].max() < 0.01, error[:, 4:].max()
    assert np.corrcoef(int8[:, 4:].ravel(), fp32[:, 4:].ravel())[0, 1] > 0.99  # measured 0.9993


def test_int8_graph_runs_every_conv_and_hardswish_in_int8_but_the_thin_stem(tiny, tmp_path):
    source = collections.Counter(n.op_type for n in onnx.load(str(tiny["fp32"])).graph.node)
    ops = collections.Counter(n.op_type for n in _optimized(tiny["int8"], tmp_path / "opt.onnx").graph.node)
    assert source["HardSwish"] > 30 and source["HardSigmoid"] == 2  # backbone hardswish, SE gates
    # every conv but the stem (the 3-channel conv reading the image and the 8-channel depthwise conv behind it,
    # kept in float) is an int8 QLinearConv
    assert ops["QLinearConv"] == source["Conv"] - 2
    assert ops["Conv"] + ops["FusedConv"] == 2
    # every other hardswish and the SE gates are uint8 table lookups: the only HardSigmoids left in float are
    # the stem's two hardswish (inlined by ONNX Runtime as HardSigmoid and Mul)
    assert ops["QLinearLeakyRelu"] == source["HardSwish"] - 2 + source["HardSigmoid"]
    assert ops["HardSigmoid"] == 2 and ops["HardSwish"] == 0
    # float islands left: the stem with the quantize after it, and Detect's box decoding
    assert ops["QuantizeLinear"] == 1
    assert ops["DequantizeLinear"] <= 8


def test_thin_front_is_the_stem_and_the_first_depthwise_conv_with_their_activations(tiny):
    from onnxruntime.quantization.shape_inference import quant_pre_process

    prepared = tiny["root"] / "front.prep.onnx"
    quant_pre_process(str(tiny["fp32"]), str(prepared), skip_symbolic_shape=True)
    model = onnx.load(str(prepared))
    quantize.onnx_int8.name_unnamed_nodes(model)
    front = quantize.thin_front_nodes(model)
    ops = {n.name: n.op_type for n in model.graph.node}
    assert [ops[name] for name in front] == ["Conv", "HardSigmoid", "Mul"] * 2
    assert front[0] == "/model.0/conv1/conv/Conv"
    assert front[3] == "/model.0/blocks2/blocks2.0/dw_conv/conv/Conv"
    # with a threshold of 8 channels the 8-channel depthwise conv is not thin: only the stem stays in float
    assert len(quantize.thin_front_nodes(model, min_channels=8)) == 3


def _activation_scales(path: Path) -> dict[str, float]:
    model = onnx.load(str(path))
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    return {
        n.input[0]: float(inits[n.input[1]])
        for n in model.graph.node
        if n.op_type == "QuantizeLinear" and n.input[1] in inits and inits[n.input[1]].size == 1
    }


def test_percentile_calibration_narrows_activation_ranges(tiny, tmp_path):
    percentile = _activation_scales(tiny["int8"])  # the default
    minmax = _activation_scales(
        quantize.quantize_onnx_int8(tiny["fp32"], tmp_path / "minmax.onnx", tiny["images"], calibration="minmax")
    )
    assert set(percentile) == set(minmax) and len(minmax) > 30
    ratios = [percentile[t] / minmax[t] for t in minmax]
    assert max(ratios) <= 1.0 + 1e-3  # a percentile of a tensor's values never exceeds its min/max range
    assert min(ratios) < 0.99  # and is narrower somewhere
    with pytest.raises(ValueError, match="unknown calibration 'max'; choose from minmax, percentile, entropy"):
        quantize.quantize_onnx_int8(tiny["fp32"], tmp_path / "x.onnx", tiny["images"], calibration="max")


def test_percentile_falls_back_to_minmax_only_where_ort_cannot_build_a_histogram(tiny, tmp_path, monkeypatch):
    import onnxruntime.quantization as ortq

    real, methods = ortq.quantize_static, []

    def histogram_fails(*args, calibrate_method, **kwargs):
        methods.append(calibrate_method)
        if calibrate_method == ortq.CalibrationMethod.Percentile:
            raise ValueError("Too many bins for data range. Cannot create 2048 finite-sized bins.")
        return real(*args, calibrate_method=calibrate_method, **kwargs)

    monkeypatch.setattr(ortq, "quantize_static", histogram_fails)
    with pytest.warns(UserWarning, match="percentile calibration failed .*calibrating .* by min/max"):
        out = quantize.quantize_onnx_int8(tiny["fp32"], tmp_path / "fallback.onnx", tiny["images"][:2])
    assert methods == [ortq.CalibrationMethod.Percentile, ortq.CalibrationMethod.MinMax]
    assert len(_activation_scales(out)) > 30

    def other_error(*args, **kwargs):
        raise ValueError("some other failure")

    monkeypatch.setattr(ortq, "quantize_static", other_error)
    with pytest.raises(ValueError, match="some other failure"):
        quantize.quantize_onnx_int8(tiny["fp32"], tmp_path / "x.onnx", tiny["images"][:2])


def test_without_the_lookup_rewrite_hardsigmoid_stays_in_float(tiny, tmp_path):
    plain = quantize.quantize_onnx_int8(
        tiny["fp32"], tmp_path / "plain.onnx", tiny["images"][:2], hardswish_lookup=False
    )
    ops = collections.Counter(n.op_type for n in _optimized(plain, tmp_path / "opt.onnx").graph.node)
    assert ops["HardSigmoid"] > 30
    assert ops["QLinearLeakyRelu"] == 0


def _hardsigmoid_qdq_model(alpha: float, beta: float, scale: float, zero: int) -> onnx.ModelProto:
    """x -> Q -> DQ -> HardSigmoid -> Q -> DQ -> y, the pattern ONNX Runtime's quantizer leaves in float."""
    inits = [
        numpy_helper.from_array(np.array(scale, np.float32), "x_scale"),
        numpy_helper.from_array(np.array(zero, np.uint8), "x_zero"),
        numpy_helper.from_array(np.array(1 / 255, np.float32), "h_scale"),
        numpy_helper.from_array(np.array(0, np.uint8), "h_zero"),
    ]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "x_scale", "x_zero"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "x_scale", "x_zero"], ["xd"]),
        helper.make_node("HardSigmoid", ["xd"], ["h"], name="gate", alpha=alpha, beta=beta),
        helper.make_node("QuantizeLinear", ["h", "h_scale", "h_zero"], ["hq"]),
        helper.make_node("DequantizeLinear", ["hq", "h_scale", "h_zero"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "hsig",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 256])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 256])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


@pytest.mark.parametrize(("alpha", "beta"), [(1 / 6, 0.5), (0.2, 0.5)])
def test_hardsigmoid_lookup_matches_the_float_hardsigmoid(tmp_path, alpha, beta):
    scale, zero = 12.0 / 255, 100
    model = _hardsigmoid_qdq_model(alpha, beta, scale, zero)
    x = (scale * (np.arange(256, dtype=np.float32) - zero))[None]  # every uint8 code of the input
    onnx.save(model, tmp_path / "float.onnx")
    assert quantize.hardsigmoid_as_lookup(model) == 1
    onnx.save(model, tmp_path / "lookup.onnx")
    reference, rewritten = _run(tmp_path / "float.onnx", x), _run(tmp_path / "lookup.onnx", x)
    exact = np.clip(alpha * x + beta, 0, 1)
    assert np.abs(reference - exact).max() <= 0.5 / 255 + 1e-6
    assert np.abs(rewritten - exact).max() <= 1 / 255 + 1e-6  # half a code of rounding + half a code of offset
    ops = [n.op_type for n in _optimized(tmp_path / "lookup.onnx", tmp_path / "opt.onnx").graph.node]
    assert "QLinearLeakyRelu" in ops and "HardSigmoid" not in ops


def test_hardsigmoid_lookup_leaves_other_patterns_alone():
    model = _hardsigmoid_qdq_model(1 / 6, 0.5, 0.05, 10)
    del model.graph.node[0:2]  # HardSigmoid now reads the float input, not a DequantizeLinear
    model.graph.node[0].input[0] = "x"
    assert quantize.hardsigmoid_as_lookup(model) == 0
    assert [n.op_type for n in model.graph.node] == ["HardSigmoid", "QuantizeLinear", "DequantizeLinear"]


def test_calibration_images_come_from_the_train_split(tiny):
    images = quantize.calibration_images(tiny["data"], 3)
    assert len(images) == 3 and images == sorted(images)
    assert all(p.parent.name == "train" for p in images)


def test_cli_reports_missing_weights_in_one_line(capsys):
    assert quantize.main(["--model", "missing-weights.pt"]) == 2
    assert capsys.readouterr().err == "error: weights not found: missing-weights.pt\n"


@pytest.mark.slow
def test_openvino_int8_exports_run_with_int8_convolutions(tiny, tmp_path):
    import openvino as ov

    x = quantize.letterboxed(tiny["images"][0], IMGSZ, IMGSZ)
    reference = _run(tiny["fp32"], x)
    folders = {
        "ultralytics": quantize.quantize_openvino_int8(  # a model built from a name exports into the working dir
            tiny["yolo"], tiny["data"], IMGSZ, dest=tmp_path / "ultralytics_int8_openvino_model"
        ),
        "nncf": quantize.quantize_openvino_nncf(tiny["fp32"], tmp_path / "nncf_openvino_model", tiny["images"]),
    }
    for name, folder in folders.items():
        compiled = ov.Core().compile_model(str(quantize.timing._openvino_xml(folder)), "CPU")
        runtime = compiled.get_runtime_model()
        precisions = collections.Counter(
            op.get_rt_info()["runtimePrecision"].astype(str)
            for op in runtime.get_ordered_ops()
            if op.get_rt_info()["layerType"].astype(str) == "Convolution"
        )
        assert precisions["u8"] + precisions["i8"] > precisions["f32"], (name, precisions)
        out = compiled({0: x})[0]
        assert out.shape == reference.shape, name
        assert np.abs(out[:, :4] - reference[:, :4]).max() < 4.0, name  # pixels at 64 px
        assert (Path(folder) / "metadata.yaml").is_file(), name


def test_cli_reports_missing_data_in_one_line(tmp_path, capsys):
    missing = tmp_path / "nosuch.yaml"
    assert quantize.main(["--model", "yolov8n-pplcnet", "--data", str(missing), "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: data={missing}: '{missing}' does not exist (no data YAML or folder of that name; lcnet-yolo "
        "builds 'neon-trees' by name, other datasets are a local data.yaml)"
    ]


def test_file_tags_keep_two_runs_last_pt_apart():
    from lcnet_yolo.quantize.comparison import file_tags

    assert file_tags(["runs/a/weights/last.pt", "runs/b/weights/last.pt", "yolov8n"]) == ["last-1", "last-2", "yolov8n"]
    assert file_tags(["yolov8n-pplcnet", "runs/a/best.pt"]) == ["yolov8n-pplcnet", "best"]
