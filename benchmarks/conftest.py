"""Benchmarks run on the real devices (no simulated CPU devices); configs import from the repo root."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
