"""Dataset builders (TFDS without TensorFlow) and the in-memory demo set."""


def register_all() -> None:
    """Import every dataset module so that it registers itself in ferjax.data.DATASETS."""
