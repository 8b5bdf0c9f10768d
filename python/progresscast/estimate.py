"""Time remaining from the progress rate, as the TypeScript core computes it.

The rate is the progress gained since a reference sample divided by the time
since it; the reference is the oldest sample within the last 30 s, so a burst
of updates does not move it and the estimate stays steady, while a job that
speeds up or slows down is followed within one window. No estimate until the
samples span 0.5 s and progress has moved.
"""
from __future__ import annotations

import math
import threading
from typing import Dict, List, Optional, Tuple

MAX_ETA_SECONDS = 1e12


class Estimator:
    """Per-operation samples of ``(time in ms, progress)``; safe to share between threads."""

    def __init__(self, window_ms: float = 30_000, min_span_ms: float = 500, max_ops: int = 10_000) -> None:
        self._window_ms = window_ms
        self._min_span_ms = min_span_ms
        self._max_ops = max_ops
        self._samples: Dict[str, List[Tuple[float, float]]] = {}
        self._lock = threading.Lock()

    def sample(self, op: str, p: float, t: float) -> Optional[float]:
        """Record progress ``p`` (0..100) at ``t`` (ms); return seconds remaining, or None."""
        with self._lock:
            samples = self._samples.get(op)
            if samples is None:
                if len(self._samples) >= self._max_ops:
                    del self._samples[next(iter(self._samples))]
                samples = []
                self._samples[op] = samples
            if samples and p < samples[-1][1]:
                samples.clear()
            samples.append((t, p))
            # Keep one sample at or before the window start as the reference.
            while len(samples) > 2 and samples[1][0] <= t - self._window_ms:
                samples.pop(0)
            if len(samples) > 64:
                del samples[1 : len(samples) - 63]
            if p >= 100:
                return 0
            ref_t, ref_p = samples[0]
            if t - ref_t < self._min_span_ms or p <= ref_p:
                return None
            rate = (p - ref_p) / (t - ref_t)
            # Rounded half up to a tenth, as JavaScript's Math.round does.
            return math.floor((100 - p) / rate / 1000 * 10 + 0.5) / 10

    def forget(self, op: str) -> None:
        """Forget an operation (it ended, or starts a new attempt)."""
        with self._lock:
            self._samples.pop(op, None)
