"""Experiments that train and compare many runs: sweeps over settings, seeds and folds, and the seeds' studies."""
