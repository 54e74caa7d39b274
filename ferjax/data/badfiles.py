"""The bad-input policy of every builder (SPEC §9): fail with one line, or skip and count.

With ``skip_bad_files=False`` (default) the first bad file/row raises :class:`DataError`
naming it. With ``True`` it is logged, skipped and counted; the count is stored with the
prepared dataset and reported in the run's notes.
"""

from __future__ import annotations

from absl import logging

from ferjax.errors import DataError


class BadFiles:
    def __init__(self, dataset: str, skip: bool):
        self.dataset, self.skip = dataset, skip
        self.count = 0

    def report(self, message: str) -> None:
        """Raise ``DataError(message)``, or (skipping) log it and count it."""
        if not self.skip:
            raise DataError(message)
        self.count += 1
        logging.warning("%s: skipping bad input (skip_bad_files=True): %s", self.dataset, message)
