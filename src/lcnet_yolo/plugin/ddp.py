"""What the process that launches multi-GPU training hands to its ranks, so that every rank trains what one process
would train.

Ultralytics' launcher (``device=0,1``) rebuilds the trainer in each rank from a pickle: the trainer class, every
argument as an override, the model and the callbacks. What our trainers decide from the user's arguments cannot be
recovered there (every argument looks user-set), and Ultralytics' restricted loading is a switch of the launching
process. :func:`passed_to_ranks` puts a :class:`LaunchState` in the environment of the launch; in a rank,
:func:`launch_state` reads it back. :func:`import_in_ranks` is a callback every ``YOLO`` model carries once
``lcnet_yolo`` is imported: unpickling it makes a rank import ``lcnet_yolo`` (our YAMLs and layers) even when the
user did not pass ``trainer=``.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from lcnet_yolo.plugin.compat import RANK

__all__ = ["LAUNCH_ENV", "LaunchState", "import_in_ranks", "launch_state", "passed_to_ranks"]

LAUNCH_ENV = "LCNET_YOLO_DDP_LAUNCH"  # one JSON object, set while the launching process runs torchrun


@dataclass(frozen=True)
class LaunchState:
    """The launching trainer's decisions a rank must reuse.

    ``save_dir`` names the run (a rank of another run ignores the state), ``user_keys`` the training arguments the user
    chose (the ranks apply lcnet-yolo's defaults to the others, as one process does), ``restricted`` whether
    ``.pt`` files were read in Ultralytics' restricted mode (the ranks then read ``best.pt`` that way too).
    """

    save_dir: str
    user_keys: tuple[str, ...]
    restricted: bool

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


@contextlib.contextmanager
def passed_to_ranks(state: LaunchState) -> Iterator[None]:
    """Within the block, processes started from this one (torchrun and its ranks) receive ``state``."""
    previous = os.environ.get(LAUNCH_ENV)
    os.environ[LAUNCH_ENV] = state.to_json()
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(LAUNCH_ENV, None)
        else:
            os.environ[LAUNCH_ENV] = previous


def launch_state(save_dir: str | Path | None) -> LaunchState | None:
    """In a DDP rank, the :class:`LaunchState` its launching process passed for the run in ``save_dir``; None in one
    process, without a state, or for another run."""
    text = os.environ.get(LAUNCH_ENV)
    if RANK == -1 or not text or not save_dir:
        return None
    fields = json.loads(text)
    if Path(fields["save_dir"]).resolve() != Path(save_dir).resolve():
        return None
    return LaunchState(fields["save_dir"], tuple(fields["user_keys"]), bool(fields["restricted"]))


def import_in_ranks(trainer: object) -> None:
    """A callback that does nothing: carried by reference to DDP ranks, it makes them import ``lcnet_yolo``."""
