"""A training callback that records what each process trains with (tests only; pickled by reference into ranks).

``record`` runs at ``on_pretrain_routine_end`` (model, data loaders and optimizer ready, the model wrapped by DDP in a
rank) and writes ``rank<RANK>.json`` (``rank-1.json`` for one process) to ``$LCNET_YOLO_DDP_RECORD``.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from ultralytics.nn import tasks


def backbone_sha256(model) -> str | None:
    """SHA-256 of the PP-LCNet backbone's state (parameters and buffers, in order), or None without one."""
    from lcnet_yolo.nn import find_backbone

    model = getattr(model, "module", model)
    try:
        backbone = find_backbone(model)
    except ValueError:
        return None
    digest = hashlib.sha256()
    for name, tensor in backbone.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def record(trainer) -> None:
    """Write this process's trainer class, recipe, backbone checksum and ``lcnet-yolo defaults:`` line."""
    optimizer = trainer.optimizer
    weights = next(g for g in optimizer.param_groups if g.get("param_group") == "weight")
    entry = {
        "rank": int(os.environ.get("RANK", -1)),
        "trainer": f"{type(trainer).__module__}.{type(trainer).__qualname__}",
        "optimizer": type(optimizer).__name__,
        "lr0": trainer.args.lr0,
        "lr": weights["initial_lr"] if "initial_lr" in weights else weights["lr"],
        "weight_decay": weights["weight_decay"],
        "nbs": trainer.args.nbs,
        "accumulate": trainer.accumulate,
        "batches": len(trainer.train_loader),
        "backbone_sha256": backbone_sha256(trainer.model),
        "defaults_line": getattr(trainer, "defaults_line", None),
        "restricted": bool(tasks.SAFE_LOAD),
        "save_dir": str(trainer.save_dir),
        "save_dir_inode": Path(trainer.save_dir).stat().st_ino,
        "world_size": trainer.world_size,
    }
    write(f"rank{entry['rank']}.json", entry)


def record_launch(trainer) -> None:
    """Write ``launch.json``: the launching trainer's run folder once Ultralytics prepared the torchrun command."""
    save_dir = Path(trainer.save_dir)
    inode = save_dir.stat().st_ino if save_dir.is_dir() else None
    write("launch.json", {"save_dir": str(save_dir), "save_dir_inode": inode})


def write(name: str, entry: dict) -> None:
    folder = Path(os.environ["LCNET_YOLO_DDP_RECORD"])
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(json.dumps(entry, indent=1))
