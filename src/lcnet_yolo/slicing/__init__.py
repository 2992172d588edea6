"""Sliced prediction of large pictures (orthophotos, mosaics, scans) and their geo-referenced output.

``predict_sliced(model, source, slice=640, overlap=0.2, full=False)`` returns one Ultralytics ``Results`` for the
whole picture. The windows and the merge are numpy only (:mod:`lcnet_yolo.slicing.core`); rasters are read and
boxes written in map coordinates by :mod:`lcnet_yolo.slicing.geo` (the ``[geo]`` extra).
"""

from lcnet_yolo.slicing.core import SliceError, check_slice, merge_detections, slice_windows
from lcnet_yolo.slicing.predict import predict_sliced

__all__ = ["SliceError", "check_slice", "merge_detections", "predict_sliced", "slice_windows"]
