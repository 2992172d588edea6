"""CPU stand-ins for the CUDA-only calls on Ultralytics' multi-GPU path (tests only, never the package).

On ``PYTHONPATH`` of the processes of ``tests/test_ddp.py`` (the launching process, torchrun and each rank), this
module runs at interpreter start-up. It lets Ultralytics' own DDP launcher believe ``device=0,1`` names two GPUs,
and makes each rank train on the CPU with the gloo backend:

* ``select_device`` (as the trainer calls it) returns ``cuda:N`` for a GPU index list, so the trainer counts two
  devices and launches two ranks; nothing is moved to that device before ``_setup_ddp``;
* ``BaseTrainer._setup_ddp`` runs with ``torch.cuda.set_device`` a no-op and NCCL reported unavailable (so the
  process group is gloo), then sets the rank's device to the CPU;
* ``DistributedDataParallel`` drops ``device_ids`` (``[None]`` for a CPU module, which torch refuses);
* when ``LCNET_YOLO_DDP_RECORD`` names a folder, :func:`ddp_recorder.record` runs in every trainer, and the run
  folder is recorded right after ``generate_ddp_command`` (:func:`ddp_recorder.record_launch`);
* the final validator builds its model on ``cuda:<current device>`` in a rank: ``AutoBackend`` gets the CPU instead,
  and ``torch.cuda.current_device`` answers 0.

Every Ultralytics name touched here is pinned in ``tests/test_compat.py``.
"""

from __future__ import annotations

import os

if os.environ.get("LCNET_YOLO_DDP_SHIM") == "1":
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel
    from ultralytics.engine import trainer as _trainer
    from ultralytics.engine import validator as _validator

    _select_device = _trainer.select_device
    _setup_ddp = _trainer.BaseTrainer._setup_ddp
    _auto_backend = _validator.AutoBackend

    def select_device(device="", *args, **kwargs):
        indices = str(device).replace("cuda:", "").split(",")
        if device and all(i.strip().isdigit() for i in indices):
            return torch.device("cuda", int(indices[0]))
        return _select_device(device, *args, **kwargs)

    def setup_ddp(self) -> None:
        set_device, nccl = torch.cuda.set_device, dist.is_nccl_available
        torch.cuda.set_device, dist.is_nccl_available = (lambda index: None), (lambda: False)
        try:
            _setup_ddp(self)
        finally:
            torch.cuda.set_device, dist.is_nccl_available = set_device, nccl
        self.device = torch.device("cpu")

    class CPUDistributedDataParallel(DistributedDataParallel):
        def __init__(self, module, device_ids=None, *args, **kwargs):
            super().__init__(module, None, *args, **kwargs)

    def auto_backend(*args, device=None, **kwargs):
        return _auto_backend(*args, device=torch.device("cpu"), **kwargs)

    _trainer.select_device = select_device
    _trainer.BaseTrainer._setup_ddp = setup_ddp
    torch.nn.parallel.DistributedDataParallel = CPUDistributedDataParallel
    torch.cuda.current_device = lambda: 0
    _validator.AutoBackend = auto_backend

    if os.environ.get("LCNET_YOLO_DDP_RECORD"):  # records of what each process trains with (ddp_recorder)
        import ddp_recorder
        from ultralytics.utils.callbacks import base as _callbacks

        _callbacks.default_callbacks["on_pretrain_routine_end"].append(ddp_recorder.record)
        _generate_ddp_command = _trainer.generate_ddp_command

        def generate_ddp_command(trainer):
            command = _generate_ddp_command(trainer)
            ddp_recorder.record_launch(trainer)  # the run folder as torchrun starts
            return command

        _trainer.generate_ddp_command = generate_ddp_command
