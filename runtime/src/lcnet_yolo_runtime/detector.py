"""``Detector``: load an exported model once, then ``predict`` images (paths or RGB arrays) into :class:`Detections`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from lcnet_yolo_runtime import geo, slicing
from lcnet_yolo_runtime.backends import load_backend
from lcnet_yolo_runtime.errors import InputError
from lcnet_yolo_runtime.images import read_image
from lcnet_yolo_runtime.metadata import ModelInfo, model_info
from lcnet_yolo_runtime.postprocess import Detections, decode, unletterbox
from lcnet_yolo_runtime.preprocess import letterbox, to_tensor


class Detector:
    """An exported Ultralytics detector (``.onnx``, or OpenVINO with the extra) run without torch.

    ``names``/``imgsz`` override or replace the exported metadata; ``threads`` sets the inference threads.
    Results match Ultralytics' predictor on the same file: same letterbox, thresholds and NMS.
    """

    def __init__(
        self,
        model: str | Path,
        conf: float = 0.25,
        iou: float = 0.7,
        max_det: int = 300,
        names: Any = None,
        imgsz: Any = None,
        threads: int | None = None,
    ) -> None:
        for label, value in (("conf", conf), ("iou", iou)):
            if not 0.0 <= value <= 1.0:
                raise InputError(f"--{label} {value} must be between 0 and 1")
        for label, value in (("max-det", max_det), ("threads", threads)):
            if value is not None and value < 1:
                raise InputError(f"--{label} {value} must be a positive number")
        self.conf, self.iou, self.max_det = conf, iou, max_det
        self.backend = load_backend(model, threads)
        self.info: ModelInfo = model_info(self.backend.metadata, Path(model).name, self.backend.input_hw, names, imgsz)
        self.model_name = Path(model).name
        rows = getattr(self.backend, "output_shape", ())
        if len(rows) == 3 and rows[1] is not None and rows[1] <= 4 and not self.info.end2end:
            raise InputError(f"{self.model_name} gives {rows[1]} rows per box: no class scores (zero classes)")

    @property
    def names(self) -> dict[int, str]:
        return self.info.names

    def predict(self, image: str | Path | np.ndarray) -> Detections:
        """Detections in one image: a file path or an RGB ``uint8`` HxWx3 array."""
        pixels = read_image(image) if isinstance(image, str | Path) else image
        if pixels.ndim != 3 or pixels.shape[2] != 3 or pixels.dtype != np.uint8:
            raise InputError(f"an image must be RGB uint8 HxWx3, got {pixels.dtype} {pixels.shape}")
        canvas, geometry = letterbox(pixels, self.info.imgsz, self.info.stride, minimal=self.info.dynamic)
        output = self.backend(to_tensor(canvas))
        self._check_output(output)
        boxes, scores, classes = decode(output, self.conf, self.iou, self.info.end2end, self.max_det)
        return Detections(unletterbox(boxes, geometry, pixels.shape[:2]), scores, classes, self.info.names)

    def predict_sliced(
        self,
        image: str | Path | np.ndarray,
        slice: int = 640,
        overlap: float = 0.2,
        full: bool = False,
    ) -> Detections:
        """Detections in a large picture predicted in overlapping ``slice`` x ``slice`` windows, each at the model's
        input size, merged across windows (:mod:`lcnet_yolo_runtime.slicing`); ``full`` adds a whole-picture pass.
        A GeoTIFF path is read window by window when the ``[geo]`` extra is installed."""
        raster = geo.Raster(image) if isinstance(image, str | Path) and geo.is_raster(image) else None
        try:
            if raster is not None:
                height, width, read = raster.height, raster.width, raster.read
            else:
                pixels = read_image(image) if isinstance(image, str | Path) else image
                height, width = pixels.shape[:2]

                def read(window: np.ndarray) -> np.ndarray:
                    return pixels[window[1] : window[3], window[0] : window[2]]

            slicing.check_slice(height, width, slice, overlap, self.info.stride)
            windows = slicing.slice_windows(height, width, slice, overlap)
            groups = [*range(len(windows)), slicing.WHOLE_PICTURE][: len(windows) + bool(full)]
            windows = np.concatenate([windows, [[0, 0, width, height]]]) if full else windows
            parts = []
            for window, group in zip(windows, groups, strict=True):
                found = self.predict(np.ascontiguousarray(read(window)))
                corner = window * (group != slicing.WHOLE_PICTURE)
                parts.append((slicing.to_picture(found.boxes, corner), found.scores, found.classes,
                              np.full(len(found), group)))  # fmt: skip
        finally:
            if raster is not None:
                raster.close()
        boxes, scores, classes, groups = (np.concatenate(column) for column in zip(*parts, strict=True))
        return Detections(*slicing.merge_detections(boxes, scores, classes, groups), self.info.names)

    def _check_output(self, output: np.ndarray) -> None:
        """A detection output has 4 + nc rows (or end-to-end rows of 6); anything else is another task's model."""
        expected = 4 + len(self.info.names)
        end2end = self.info.end2end or (output.ndim == 3 and output.shape[-1] == 6)
        if output.ndim != 3 or (not end2end and output.shape[1] != expected):
            raise InputError(
                f"{self.model_name} gives output {tuple(output.shape)}, not a detector's (1, {expected}, N) "
                f"for {len(self.info.names)} classes; is it another task's model, or are --names wrong?"
            )
