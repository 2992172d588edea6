"""The format matrix's latency column against ONNX Runtime, on synthetic timing rows (no export needed)."""

from __future__ import annotations

from lcnet_yolo.formats.matrix import (
    CASES_BY_KEY,
    SLOW_FACTOR,
    SLOW_HINTS,
    Row,
    matrix_markdown,
    onnx_runtime_ratios,
    slow_formats,
)


def rows(latencies: dict[str, float | None]) -> list[Row]:
    """Rows that exported, predicted and validated, with the given median latencies (ms) by case key."""
    return [
        Row(CASES_BY_KEY[key], exported=f"/x/{key}", boxes=3, map50_95=0.5, map50=0.8, latency_ms=ms)
        for key, ms in latencies.items()
    ]


def table_cells(markdown: str) -> dict[str, list[str]]:
    """Format label -> the cells of its row."""
    table = [line for line in markdown.splitlines() if line.startswith("| ") and not line.startswith("| format")]
    return {cells[0]: cells for cells in ([c.strip() for c in line.strip("|").split("|")] for line in table)}


def test_latency_is_given_as_a_multiple_of_onnx_runtime_and_slow_formats_are_flagged():
    timed = rows({"pt": 60.0, "onnx": 40.0, "openvino": 30.0, "ncnn": 400.0, "mnn": 80.0, "torchscript": 81.0})
    assert onnx_runtime_ratios(timed) == {
        "pt": 1.5,
        "onnx": 1.0,
        "openvino": 0.75,
        "ncnn": 10.0,
        "mnn": 2.0,
        "torchscript": 2.025,
    }
    assert slow_formats(timed) == [("NCNN", 10.0), ("TorchScript", 2.025)]  # in table order; 2.0× (MNN) is not
    markdown = matrix_markdown(timed)
    assert markdown.splitlines()[0].endswith("| latency ms | × ONNX Runtime |")
    cells = table_cells(markdown)
    assert [cells[label][-2:] for label in ("ONNX", "OpenVINO", "MNN", "NCNN", "TorchScript", "PyTorch (.pt)")] == [
        ["40.0", "1.00"],
        ["30.0", "0.75"],
        ["80.0", "2.00"],
        ["400.0", "10.00 ⚠"],
        ["81.0", "2.02 ⚠"],
        ["60.0", "1.50"],
    ]
    assert markdown.splitlines()[-2:] == [
        f"⚠ more than {SLOW_FACTOR:g}× slower than ONNX Runtime on this machine: NCNN (10.0×), TorchScript (2.0×)",
        f"  {SLOW_HINTS['ncnn']}",
    ]
    assert "OMP_WAIT_POLICY=PASSIVE" in SLOW_HINTS["ncnn"]


def test_no_flag_and_no_line_when_every_format_keeps_up():
    markdown = matrix_markdown(rows({"onnx": 40.0, "openvino": 45.0, "ncnn": 79.0}))
    assert "⚠" not in markdown
    assert table_cells(markdown)["NCNN"][-1] == "1.98"


def test_without_an_onnx_runtime_timing_the_column_is_empty():
    no_onnx = rows({"pt": 60.0, "ncnn": 400.0})
    untimed_onnx = rows({"onnx": None, "ncnn": 400.0})
    for timed in (no_onnx, untimed_onnx):
        assert onnx_runtime_ratios(timed) == {} and slow_formats(timed) == []
        markdown = matrix_markdown(timed)
        assert "⚠" not in markdown and table_cells(markdown)["NCNN"][-2:] == ["400.0", ""]


def test_a_failed_format_keeps_its_error_row_and_is_not_timed():
    timed = rows({"onnx": 40.0, "ncnn": None})
    timed[1].error = "RuntimeError: pnnx failed"
    markdown = matrix_markdown(timed)
    cells = table_cells(markdown)
    assert cells["NCNN"][-1] == "" and "↳ NCNN: RuntimeError: pnnx failed" in cells
    assert all(len(row) == 8 for row in cells.values())  # every row has the table's eight columns
