"""ferjax: facial expression recognition research in JAX/Flax.

``ferjax.load_run(workdir)`` loads a trained run (:mod:`ferjax.run`); ``ferjax.Predictor``
predicts on photos and videos (:mod:`ferjax.predict`). Both are imported on first use.
"""

__version__ = "0.1.0"

_LAZY = {"load_run": "ferjax.run", "TrainedModel": "ferjax.run", "Predictor": "ferjax.predict"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'ferjax' has no attribute {name!r}")
