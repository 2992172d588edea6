"""Relative update per optimizer step, ||dw|| / ||w|| per filter, by kind of convolution (BENCHMARKS.md,
"Defaults that train"): AdamW at lr 0.002 (Ultralytics' automatic choice for one class), one step per batch,
no warm-up, the first 49 steps on neon-trees at 256 px.

    python docs/defaults/adam_steps.py yolov8n.yaml
    python docs/defaults/adam_steps.py yolov8n-pplcnet.yaml [scaled_init]
"""

import json
import sys
from pathlib import Path

from torch import nn
from ultralytics.models.yolo.detect import DetectionTrainer

import lcnet_yolo
from lcnet_yolo.data import resolve_data

sys.path.insert(0, str(Path(__file__).parent))
from variants import trainer_with_variants

model_name, steps = sys.argv[1], 49
base = trainer_with_variants(DetectionTrainer, scaled_init=True) if "scaled_init" in sys.argv[2:] else DetectionTrainer


def kind(name: str, conv: nn.Conv2d, head_prefix: str) -> str:
    if name.startswith(head_prefix):
        return "head"
    if ".se." in name:
        return "SE"
    if conv.groups > 1 and conv.groups == conv.in_channels:
        return "depthwise"
    return "1x1" if conv.kernel_size == (1, 1) else "dense kxk"


class Trainer(base):
    def optimizer_step(self):
        if not hasattr(self, "convs"):
            head = f"model.{len(self.model.model) - 1}."
            self.convs = [(kind(n, m, head), m) for n, m in self.model.named_modules() if isinstance(m, nn.Conv2d)]
            self.steps = {}
        if sum(len(v) for v in self.steps.values()) >= steps * len(self.convs):
            return super().optimizer_step()
        before = [m.weight.detach().clone() for _, m in self.convs]
        super().optimizer_step()
        for (k, m), w0 in zip(self.convs, before, strict=True):
            rel = (m.weight.detach() - w0).flatten(1).norm(dim=1) / w0.flatten(1).norm(dim=1).clamp_min(1e-12)
            self.steps.setdefault(k, []).append(rel.mean().item())


overrides = dict(
    model=lcnet_yolo.resolve_model(model_name),
    data=resolve_data("neon-trees"),
    epochs=7,
    imgsz=256,
    batch=4,
    nbs=4,
    workers=0,
    val=False,
    plots=False,
    seed=0,
    deterministic=True,
    warmup_epochs=0,
    project=str(Path("runs/defaults").resolve()),
    name="adam-steps",
    verbose=False,
)
trainer = Trainer(overrides=overrides)
trainer.train()
result = {k: {"relative_step": sum(v) / len(v), "samples": len(v)} for k, v in trainer.steps.items()}
print("RESULT", model_name, sys.argv[2:], json.dumps(result))
