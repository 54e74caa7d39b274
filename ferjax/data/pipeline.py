"""Grain input pipelines the trainer calls (SPEC §2–3, §9).

Training (:func:`train_batches`) is a ``grain.MapDataset`` addressed by step index:

    source → shuffle(seed; reshuffled each epoch) → first steps_per_epoch·B examples
    (drop remainder) → preprocess → random augmentation parameters (seeded by seed and the
    example's global position) → batch of B/P → this process's batches [process_index::P]
    → vectorised augmentation + normalisation → repeat

Batch ``k`` is a pure function of (source, config, k), so resuming at ``start_step=k``
yields exactly the batches an uninterrupted run would have seen from step k on. With P
processes, process p reads only rows [p·B/P, (p+1)·B/P) of each global batch (Grain's
datasets are lazy: the other rows are never read); in mesh order (process 0's devices
first) the global batch is then the same rows, in the same order, on the same devices,
whatever the process count. Evaluation (:func:`eval_batches`) reads a split in order as
prepared uint8 images in the same contiguous per-process blocks, pads the last batch and
marks real examples with ``mask``. Everything runs in the main process (48×48 images are cheap).
"""

from __future__ import annotations

import itertools
from typing import Any, Iterator

import grain
import jax
import ml_collections
import numpy as np

from ferjax.data import augment, preprocess
from ferjax.errors import ConfigError, DataError


def local_batch_size(global_batch_size: int, key: str = "batch_size") -> int:
    """This process's share of a global batch (multi-host: each process reads its own slice)."""
    processes = jax.process_count()
    if global_batch_size <= 0 or global_batch_size % processes:
        raise ConfigError(f"config.{key}={global_batch_size} must be a positive multiple of the process count {processes}")
    return global_batch_size // processes


def steps_per_epoch(source: Any, config: ml_collections.ConfigDict) -> int:
    """Full global batches per epoch (the remainder of each epoch is dropped)."""
    if len(source) < config.batch_size:
        raise DataError(
            f"training split of {config.dataset!r} has {len(source)} examples, fewer than "
            f"config.batch_size={config.batch_size}"
        )
    return len(source) // config.batch_size


class _Preprocess(grain.transforms.Map):
    """Channels and size of the run; image stays uint8 until augmentation."""

    def __init__(self, size: int, channels: int):
        self.size, self.channels = size, channels

    def map(self, example: dict) -> dict:
        image = preprocess.prepare(example["image"], self.size, self.channels)
        return {"image": image, "label": np.int32(example["label"])}


class _SampleAugmentation(grain.transforms.RandomMap):
    def __init__(self, settings: augment.Settings, size: int):
        self.settings, self.size = settings, size

    def random_map(self, example: dict, rng: np.random.Generator) -> dict:
        return {**example, "augment": augment.sample(rng, self.settings, self.size)}


class _Finish(grain.transforms.Map):
    """Batch-level: apply the sampled augmentation (if any) and normalise to [-1, 1]."""

    def __init__(self, settings: augment.Settings | None):
        self.settings = settings

    def map(self, batch: dict) -> dict:
        if self.settings is None:
            image = preprocess.normalize(batch["image"])
        else:
            image = augment.apply(batch["image"], batch["augment"], self.settings)
        return {"image": image, "label": batch["label"].astype(np.int32)}


def train_dataset(source: Any, config: ml_collections.ConfigDict) -> grain.MapDataset:
    """The infinite ``grain.MapDataset`` of this process's training batches, indexed by step."""
    global_batch = config.batch_size
    per_process = local_batch_size(global_batch)
    epoch_length = steps_per_epoch(source, config) * global_batch
    seed = int(config.seed) % 2**32
    settings = augment.Settings.from_config(config.augment)
    ds = grain.MapDataset.source(source).shuffle(seed=seed)[:epoch_length]
    ds = ds.map(_Preprocess(config.image_size, config.channels))
    if settings is not None:
        ds = ds.random_map(_SampleAugmentation(settings, config.image_size), seed=seed)
    ds = ds.batch(per_process, drop_remainder=True)[jax.process_index() :: jax.process_count()]
    return ds.map(_Finish(settings)).repeat()


def train_batches(source: Any, config: ml_collections.ConfigDict, *, start_step: int = 0) -> Iterator[dict]:
    """Infinite iterator of ``{"image": float32 (B, S, S, C), "label": int32 (B,)}`` from ``start_step``.

    B = config.batch_size // process count, S = config.image_size, C = config.channels.
    """
    ds = train_dataset(source, config)
    return (ds[step] for step in itertools.count(start_step))


def eval_batches(source: Any, config: ml_collections.ConfigDict) -> Iterator[dict]:
    """The whole split in order: ``{"image", "label", "index", "mask": bool (B,)}``, last batch padded.

    ``image`` is uint8 ``(B, S, S, C)`` (prepared, not yet normalised: evaluation views such
    as test-time augmentation start from it), ``index`` the examples' positions in the split.
    Batches hold config.eval_batch_size examples globally (this process's share locally);
    padding has ``mask=False``, label 0, index 0 and zero images. Every process yields the
    same count.
    """
    global_batch = config.eval_batch_size
    per_process = local_batch_size(global_batch, "eval_batch_size")
    size, channels = config.image_size, config.channels
    prepare = _Preprocess(size, channels)
    n = len(source)
    for start in range(0, n, global_batch):
        first = start + jax.process_index() * per_process
        positions = np.arange(first, first + per_process)
        real = positions[positions < n].tolist()
        images = np.zeros((per_process, size, size, channels), np.uint8)
        labels = np.zeros(per_process, np.int32)
        index = np.zeros(per_process, np.int64)
        for row, example in enumerate(_read(source, real)):
            example = prepare.map(example)
            images[row], labels[row], index[row] = example["image"], example["label"], real[row]
        yield {"image": images, "label": labels, "index": index, "mask": np.arange(per_process) < len(real)}


def _read(source: Any, indices: list[int]) -> list[dict]:
    """The examples at ``indices``, in one batched read when the source offers it."""
    if hasattr(source, "_getitems"):
        return source._getitems(indices)
    return [source[i] for i in indices]
