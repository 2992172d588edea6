"""Datasets in Ultralytics' YOLO format: the ones lcnet-yolo builds by name, a synthetic one, and a dataset check.

=============================  =====================================================================================
Module                         What it holds
=============================  =====================================================================================
:mod:`.neon_trees`             the ``neon-trees`` dataset (NEON aerial tree crowns): VOC parsing, tile plan, build
                               with manifest, verification and lock
:mod:`.deepforest_wheel`       the deepforest 2.1.0 wheel the NEON data comes from: download, SHA-256, members
:mod:`.tiling`                 pure geometry: tile windows, box clipping, YOLO label rows
:mod:`.synthetic`              :func:`make_synthetic_dataset`, rectangles on noise for tests and demos
:mod:`.check`                  :func:`check_dataset`, a read-only check of what Ultralytics will skip, and
                               :func:`refuse_download_script`
:mod:`.trust`                  :func:`trusted_data`, the check every ``data=`` passes: fields, no URL, no
                               archive, no download script, missing files named
=============================  =====================================================================================

:data:`DATASETS` maps each name lcnet-yolo builds itself to a :class:`Dataset`; :func:`resolve_data` is the one
place a ``data=`` value is turned into a ``data.yaml`` path. Every error is a :class:`DatasetError`
(:mod:`lcnet_yolo.io.errors`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lcnet_yolo.data import neon_trees
from lcnet_yolo.data.check import DatasetReport, FileIssue, check_dataset, check_split, refuse_download_script
from lcnet_yolo.data.deepforest_wheel import DEEPFOREST_WHEEL_NAME, WHEEL_ENV, deepforest_image, fetch_deepforest_wheel
from lcnet_yolo.data.neon_trees import (
    HOLDOUT_GUARD,
    MIN_BOX_SIDE,
    TILE_SIZE,
    build_neon_trees,
    read_manifest,
    verify_dataset,
)
from lcnet_yolo.data.synthetic import make_synthetic_dataset
from lcnet_yolo.data.trust import read_data_yaml, trusted_data
from lcnet_yolo.io.errors import DatasetError
from lcnet_yolo.io.paths import HOME_ENV, lcnet_yolo_home

__all__ = [
    "DATASETS",
    "DEEPFOREST_WHEEL_NAME",
    "HOLDOUT_GUARD",
    "HOME_ENV",
    "MIN_BOX_SIDE",
    "TILE_SIZE",
    "WHEEL_ENV",
    "Dataset",
    "DatasetError",
    "DatasetReport",
    "FileIssue",
    "build_neon_trees",
    "check_dataset",
    "check_split",
    "dataset_descriptions",
    "deepforest_image",
    "fetch_deepforest_wheel",
    "lcnet_yolo_home",
    "make_synthetic_dataset",
    "read_data_yaml",
    "read_manifest",
    "refuse_download_script",
    "resolve_data",
    "trusted_data",
    "verify_dataset",
]


@dataclass(frozen=True)
class Dataset:
    """A dataset lcnet-yolo builds by name: ``build()`` makes it once (cached) and returns its ``data.yaml``."""

    name: str
    description: str
    build: Callable[[], Path]


DATASETS: dict[str, Dataset] = {
    dataset.name: dataset for dataset in (Dataset("neon-trees", neon_trees.DESCRIPTION, build_neon_trees),)
}


def dataset_descriptions() -> dict[str, str]:
    """Name -> one-line description of every registered dataset (for help texts)."""
    return {name: dataset.description for name, dataset in DATASETS.items()}


def resolve_data(name_or_path: str | Path) -> str:
    """A registered dataset name (``neon-trees`` or ``neon-trees.yaml``) becomes its built ``data.yaml``; any other
    value is returned unchanged (Ultralytics resolves its own names). An existing file of that name wins."""
    text = str(name_or_path)
    name = text.removesuffix(".yaml")
    if name in DATASETS and not Path(text).is_file():
        return str(DATASETS[name].build())
    return text
