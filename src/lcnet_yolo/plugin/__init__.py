"""The Ultralytics plug-in: registration of our layers and model names (:mod:`.register`), our trainers
(:mod:`.trainers`) and every reach into Ultralytics' internals (:mod:`.compat`).

Nothing is imported here, so that any layer of the package may import :mod:`lcnet_yolo.plugin.compat`.
"""
