"""A tiny in-memory dataset for trainer tests: 7 classes told apart by a bright square's position."""

import numpy as np

from ferjax import data

NAME = "toy"


class ArraySource:
    def __init__(self, images: np.ndarray, labels: np.ndarray):
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict:
        return {"image": self.images[index], "label": int(self.labels[index])}


def make_split(count: int, seed: int, size: int = 16) -> ArraySource:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 7, count)
    images = rng.integers(0, 60, (count, size, size, 1)).astype(np.uint8)
    for i, label in enumerate(labels):
        row, col = divmod(int(label), 3)
        images[i, 2 + 4 * row: 5 + 4 * row, 2 + 4 * col: 5 + 4 * col] = 255
    return ArraySource(images, labels)


def register() -> None:
    if NAME in data.DATASETS:
        return

    @data.DATASETS.register(NAME)
    def _toy(config) -> data.DatasetSplits:
        return data.DatasetSplits(
            name=NAME,
            class_names=[f"c{i}" for i in range(7)],
            train=make_split(96, 0),
            validation=make_split(40, 1),
            test=make_split(44, 2),
        )
