"""Files in and out: ImageNet weights (:mod:`.weights`, :mod:`.hub`), checkpoints that are safe to load
(:mod:`.checkpoints`), ``.safetensors`` copies (:mod:`.safetensors`), atomic writes and run folders (:mod:`.runs`)
and the one error family (:mod:`.errors`)."""
