"""The shared defaults (:func:`ferjax.config.get_config`) as a runnable config: the built-in demo
set, full-size baseline CNN, softmax, Adam, 10 epochs. New configs start from ``ferjax.config``.

Run:  python -m ferjax.main --config=configs/default.py --workdir=runs/default
"""

from ferjax.config import get_config  # noqa: F401
