"""Exported models give PyTorch's raw outputs: ONNX (onnxruntime) and OpenVINO, on a fixed 96 px input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from ultralytics import YOLO

IMGSZ = 96
# Raw outputs are box coordinates in pixels (a barely trained model puts some far outside the 96 px image, up to
# a few hundred) and class scores in 0..1; float32 runtimes agree to ~1e-4 absolute (measured ~9e-5 ONNX,
# ~6e-5 OpenVINO), so these bounds leave room for other CPUs without hiding a real mismatch.
ONNX_ATOL = 1e-3
OPENVINO_ATOL = 2e-3


@pytest.fixture(scope="module")
def fixed_input() -> np.ndarray:
    return np.random.default_rng(0).random((1, 3, IMGSZ, IMGSZ), dtype=np.float32)


def pytorch_raw(weights: Path, x: np.ndarray) -> np.ndarray:
    """Ultralytics' raw detector output (1, 4 + nc, anchors) from the fused float32 PyTorch model."""
    model = YOLO(weights).model.float().eval().fuse(verbose=False)
    with torch.no_grad():
        return model(torch.from_numpy(x))[0].numpy()


@pytest.fixture(scope="module")
def exported_copy(best_pt, tmp_path_factory) -> Path:
    """A copy of the trained ``best.pt`` in its own folder, so exports land next to it and not in the run."""
    target = tmp_path_factory.mktemp("export") / "best.pt"
    target.write_bytes(Path(best_pt).read_bytes())
    return target


def test_onnx_export_matches_pytorch(exported_copy, fixed_input):
    import onnxruntime

    onnx_file = YOLO(exported_copy).export(format="onnx", imgsz=IMGSZ, device="cpu")
    session = onnxruntime.InferenceSession(onnx_file, providers=["CPUExecutionProvider"])
    (exported,) = session.run(None, {session.get_inputs()[0].name: fixed_input})
    expected = pytorch_raw(exported_copy, fixed_input)
    assert exported.shape == expected.shape == (1, 5, (IMGSZ // 8) ** 2 + (IMGSZ // 16) ** 2 + (IMGSZ // 32) ** 2)
    difference = float(np.abs(exported - expected).max())
    print(f"ONNX vs PyTorch max abs diff: {difference:.2e} (outputs up to {np.abs(expected).max():.1f})")
    assert difference < ONNX_ATOL


@pytest.mark.slow
def test_openvino_export_matches_pytorch(exported_copy, fixed_input):
    import openvino as ov

    folder = YOLO(exported_copy).export(format="openvino", imgsz=IMGSZ, device="cpu")
    xml = next(Path(folder).glob("*.xml"))
    compiled = ov.Core().compile_model(str(xml), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    exported = compiled(fixed_input)[compiled.output(0)]
    expected = pytorch_raw(exported_copy, fixed_input)
    assert exported.shape == expected.shape
    difference = float(np.abs(exported - expected).max())
    print(f"OpenVINO vs PyTorch max abs diff: {difference:.2e} (outputs up to {np.abs(expected).max():.1f})")
    assert difference < OPENVINO_ATOL
