"""Writing that survives a kill, and run folders no two trainings share.

* :class:`AtomicPath` is a ``Path`` whose ``write_bytes`` never leaves a half-written file: a trainer that stores
  ``last.pt``/``best.pt`` through it keeps the previous checkpoint when it is killed mid-write.
* :func:`reserve_save_dir` claims a fresh run directory with an atomic ``mkdir``, so two trainings started at the
  same moment with the same ``project``/``name`` never share one.
* :func:`trim_results_csv` drops the rows of epochs a resumed run will train again.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from lcnet_yolo.plugin.compat import DEFAULT_CFG, get_cfg, get_save_dir

__all__ = ["AtomicPath", "fsync_dir", "reserve_save_dir", "trim_results_csv"]


class AtomicPath(type(Path())):
    """A ``Path`` whose ``write_bytes``/``write_text`` replace the file atomically.

    The data goes to a temporary file in the same folder, is flushed and fsynced, and is then moved over the
    target with ``os.replace``: a reader (or a resumed run) sees the old file or the new one, never a prefix.
    Paths derived from it (``/``, ``with_name``) are ``AtomicPath`` too.
    """

    def write_bytes(self, data) -> int:
        view = memoryview(data)
        mode = self.stat().st_mode & 0o777 if self.exists() else 0o644
        fd, tmp = tempfile.mkstemp(dir=self.parent, prefix=f".{self.name}.", suffix=".tmp")
        try:
            os.fchmod(fd, mode)  # mkstemp creates 0600 files; keep the permissions a plain write would give
            with os.fdopen(fd, "wb") as f:
                f.write(view)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        fsync_dir(self.parent)
        return view.nbytes

    def write_text(self, data: str, encoding: str | None = None, errors: str | None = None, newline=None) -> int:
        if newline is not None:
            data = data.replace("\n", newline)
        self.write_bytes(data.encode(encoding or "utf-8", errors or "strict"))
        return len(data)


def fsync_dir(folder: Path) -> None:
    """Make a rename durable (POSIX); a no-op where folders cannot be opened (Windows)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def reserve_save_dir(cfg: Any = None, overrides: dict | None = None) -> Path:
    """Create and return a run directory no other process has, named as Ultralytics would name it.

    ``project``/``name``/``exist_ok``/``task``/``mode`` are read from ``cfg``/``overrides`` exactly as the
    trainer reads them. With ``exist_ok=True`` (or an explicit ``save_dir``) that directory is used as is.
    Otherwise ``name``, ``name-2``, ``name-3`` ... are tried with ``os.mkdir``, which fails if the directory
    exists, so of two processes racing for the same name exactly one gets it. Pass the result to the trainer
    as the ``save_dir`` override.
    """
    naming = {"project", "name", "exist_ok", "task", "mode", "save_dir"}  # a trainer's extra keys stay out
    args = get_cfg(cfg if cfg is not None else DEFAULT_CFG, {k: v for k, v in (overrides or {}).items() if k in naming})
    if getattr(args, "save_dir", None):
        save_dir = Path(args.save_dir)
        save_dir.mkdir(parents=True, exist_ok=True)
        return save_dir.resolve()
    base = get_save_dir(SimpleNamespace(**{**vars(args), "exist_ok": True}))  # project/name, not incremented
    if args.exist_ok:
        base.mkdir(parents=True, exist_ok=True)
        return base
    base.parent.mkdir(parents=True, exist_ok=True)
    for n in range(1, 10_000):
        candidate = base if n == 1 else base.with_name(f"{base.name}-{n}")
        try:
            os.mkdir(candidate)
        except FileExistsError:
            continue
        return candidate
    raise RuntimeError(f"{base}: no free run directory name among {base.name}, {base.name}-2 ... {base.name}-9999")


def trim_results_csv(csv: str | Path, completed_epochs: int) -> int:
    """Keep the header and the rows of epochs ``1..completed_epochs`` of a ``results.csv``; return rows kept.

    Ultralytics appends an epoch's row to ``results.csv`` before it saves that epoch's ``last.pt``, so a run
    killed in between resumes that epoch and would write its row twice; a kill mid-append leaves a broken line.
    Call this with the number of epochs ``last.pt`` holds when resuming (the file is rewritten atomically).
    """
    csv = Path(csv)
    if not csv.is_file():
        return 0
    lines = csv.read_text(encoding="utf-8").splitlines()
    if not lines:
        return 0
    header, kept = lines[0], []
    width = len(header.split(","))
    for line in lines[1:]:
        fields = line.split(",")
        try:
            epoch = int(float(fields[0]))
        except ValueError:
            continue
        if len(fields) == width and epoch <= completed_epochs and all(f.strip() for f in fields):
            kept.append(line)
    AtomicPath(csv).write_text("\n".join([header, *kept]) + "\n")
    return len(kept)
