"""The datasets: one module per dataset that finds its files, reads them (through a TFDS
builder without TensorFlow where files are decoded, SPEC §2) and registers a loader in
:data:`ferjax.data.DATASETS` with its ``config.datasets.<name>`` defaults (SPEC §3).

Shared machinery (split sources, the prepared-copy cache, decoding, augmentation, the input
pipeline) lives in :mod:`ferjax.data`, whose import registers every module here.
"""
