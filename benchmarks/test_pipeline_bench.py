"""Input-pipeline throughput (issue 2, item 7): images/s of ``ferjax.data.pipeline`` at 48×48.

Source: the in-memory demo split (so the figure is the pipeline's own cost, no disk).
Cases: training batches with every augmentation on (flip, rotation, shift, zoom, shear,
crop with padding, random erasing), training batches without augmentation, and evaluation
batches. Each round pulls 20 batches of 64 from a warmed-up iterator on the main process.

    pytest benchmarks/test_pipeline_bench.py --benchmark-columns=min,median -s
"""

from __future__ import annotations

import ml_collections
import pytest

from ferjax.data import pipeline
from ferjax.datasets import demo

BATCH, BATCHES_PER_ROUND = 64, 20
_results: dict[str, float] = {}


def _config(augment: bool) -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(
        dict(
            dataset="demo", seed=0, batch_size=BATCH, eval_batch_size=BATCH, image_size=48, channels=1,
            augment=dict(
                enabled=augment, flip=True, rotation_degrees=15.0, shift_fraction=0.1, zoom_range=0.1,
                shear_degrees=10.0, crop_padding=4, erasing_probability=0.5,
            ),
        )
    )


@pytest.fixture(scope="module")
def source():
    return demo.generate(2560, 0, "train")


def _cycle(make):
    iterator = make()
    while True:
        yield from iterator
        iterator = make()


@pytest.mark.parametrize("case", ["train_augmented", "train_plain", "eval"])
def test_pipeline_images_per_second(benchmark, source, case):
    config = _config(augment=case == "train_augmented")
    if case == "eval":
        batches = _cycle(lambda: pipeline.eval_batches(source, config))
    else:
        batches = pipeline.train_batches(source, config, start_step=0)
    next(batches)

    def pull():
        for _ in range(BATCHES_PER_ROUND):
            next(batches)

    benchmark.pedantic(pull, rounds=7, iterations=1)
    rate = BATCH * BATCHES_PER_ROUND / benchmark.stats.stats.min
    benchmark.extra_info["images_per_second"] = round(rate)
    _results[case] = rate


def teardown_module():
    for case, rate in _results.items():
        print(f"\npipeline {case}: {rate:,.0f} images/s (48x48x1, batch {BATCH}, main process)")
