"""Reading pictures and videos as RGB ``uint8`` arrays: OpenCV when installed (as Ultralytics reads), else Pillow."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from lcnet_yolo_runtime.errors import InputError
from lcnet_yolo_runtime.preprocess import cv2

# The suffixes Ultralytics' predictor accepts as pictures. A list of its own: the torch-free runtime cannot import the
# main package's (lcnet_yolo.io.paths.IMAGE_SUFFIXES), nor Ultralytics'.
IMAGE_SUFFIXES = {".bmp", ".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".pfm", ".dng", ".mpo", ".heic"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".m4v", ".mpeg", ".mpg", ".wmv", ".webm", ".gif", ".ts"}


def read_image(path: str | Path) -> np.ndarray:
    """An image file as RGB ``uint8`` HxWx3; :class:`InputError` when it cannot be decoded."""
    path = Path(path)
    if not path.is_file():  # follows links; False for a pipe or a device, which would never end
        raise InputError(f"cannot read image {path} (not a regular file)")
    try:
        if cv2 is not None:
            bgr = cv2.imdecode(np.fromfile(str(path), np.uint8), cv2.IMREAD_COLOR)
            if bgr is None:
                raise ValueError("not a decodable image")
            return np.ascontiguousarray(bgr[..., ::-1])
        from PIL import Image, ImageOps

        with Image.open(path) as image:
            return np.asarray(ImageOps.exif_transpose(image).convert("RGB"))
    except Exception as error:
        raise InputError(f"cannot read image {path} ({error})") from None


def read_video(path: str | Path) -> tuple[Iterator[np.ndarray], int, float]:
    """Frames (RGB) of a video, its frame count (0 if unknown) and frame rate; needs OpenCV."""
    if cv2 is None:
        raise InputError(f"reading video {path} needs OpenCV: pip install 'lcnet-yolo-runtime[video]'")
    capture = cv2.VideoCapture(str(path))
    ok, first = capture.read() if capture.isOpened() else (False, None)
    if not ok:
        capture.release()
        raise InputError(f"cannot read video {path}")
    count = max(int(capture.get(cv2.CAP_PROP_FRAME_COUNT)), 0)
    fps = float(capture.get(cv2.CAP_PROP_FPS)) or 25.0

    def frames() -> Iterator[np.ndarray]:
        frame = first
        try:
            while frame is not None:
                yield np.ascontiguousarray(frame[..., ::-1])
                ok, frame = capture.read()
                frame = frame if ok else None
        finally:
            capture.release()

    return frames(), count, fps
