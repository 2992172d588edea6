"""Ultralytics' export formats for lcnet-yolo: what each needs, one-line errors, and the format matrix.

* :mod:`.support` — the package and extra every format needs for export and for inference, the checks that
  raise :class:`MissingPackageError` (one line naming the extra) before Ultralytics starts, and the checks of an
  exported model's task and input size that the ``lcnet-yolo`` command runs;
* :mod:`.matrix` — ``lcnet-yolo formats``: export a trained model to each tested format and measure export,
  predict, val mAP and latency, for the table in docs/formats.md.

Everything public of both is importable from here (``formats.require_export("ncnn")``, ``formats.main(argv)``).
Callers (the CLI, the matrix) look the checks up in :mod:`.support`: patch them there.
"""

from lcnet_yolo.formats import support
from lcnet_yolo.formats.matrix import (
    CASES,
    CASES_BY_KEY,
    OPTIONAL_CASES,
    Case,
    Row,
    format_matrix,
    main,
    matrix_markdown,
    run_case,
    time_round_robin,
)
from lcnet_yolo.formats.support import (
    ALIASES,
    FORMATS,
    PACKAGES,
    RUNTIME_SUFFIXES,
    FormatSupport,
    MissingPackageError,
    canonical_format,
    check_mode,
    check_model,
    exported_format,
    exported_metadata,
    install_hint,
    is_installed,
    message_for,
    missing_package_message,
    require_export,
    require_runtime,
    require_track,
    support_markdown,
)

__all__ = [
    "ALIASES",
    "CASES",
    "CASES_BY_KEY",
    "FORMATS",
    "OPTIONAL_CASES",
    "PACKAGES",
    "RUNTIME_SUFFIXES",
    "Case",
    "FormatSupport",
    "MissingPackageError",
    "Row",
    "canonical_format",
    "check_mode",
    "check_model",
    "exported_format",
    "exported_metadata",
    "format_matrix",
    "install_hint",
    "is_installed",
    "main",
    "matrix_markdown",
    "message_for",
    "missing_package_message",
    "require_export",
    "require_runtime",
    "require_track",
    "run_case",
    "support",
    "support_markdown",
    "time_round_robin",
]
