"""``MelTap``: what the producer made lately (mel frames, output level), for the GUI's views."""
from __future__ import annotations

import math
import threading

import numpy as np


class MelTap:
    """Recent mel frames and output level, written by the producer, read by the GUI."""

    def __init__(self, n_mels: int, capacity: int = 512):
        self.capacity = capacity
        self._frames = np.zeros((n_mels, capacity), dtype=np.float32)
        self._count = 0
        self._audio = np.zeros(0, dtype=np.float32)
        self._lock = threading.Lock()  # never taken by the audio callback

    def push(self, mel: np.ndarray, audio: np.ndarray) -> None:
        """Producer side: ``mel (n_mels, k)`` and the device-rate ``audio`` chunk made from it (kept, not copied)."""
        k = min(mel.shape[1], self.capacity)
        mel = mel[:, mel.shape[1] - k:]
        with self._lock:
            i = self._count % self.capacity
            first = min(k, self.capacity - i)
            self._frames[:, i:i + first] = mel[:, :first]
            if k > first:
                self._frames[:, : k - first] = mel[:, first:]
            self._count += k
            self._audio = audio  # the meter measures it on the reader's thread

    @property
    def count(self) -> int:
        return self._count

    def frames_since(self, counter: int, lag: int = 0) -> tuple[int, np.ndarray]:
        """Frames produced after ``counter`` (at most ``capacity``) but for the newest ``lag``,
        and the new counter (never behind ``counter``). ``lag``: ``Synth.heard_lag_frames()``
        holds back the frames that are not heard yet."""
        with self._lock:
            counter = max(0, int(counter))
            end = max(counter, self._count - max(0, int(lag)))
            n = min(end - counter, self.capacity)
            cols = (end - n + np.arange(n)) % self.capacity
            return end, self._frames[:, cols].copy()

    def latest(self, n: int) -> np.ndarray:
        """The newest ``n`` frames, oldest first (padded with the floor before the start)."""
        with self._lock:
            n = min(int(n), self.capacity)
            out = np.full((self._frames.shape[0], n), np.float32(-5.0))
            have = min(n, self._count)
            cols = (self._count - have + np.arange(have)) % self.capacity
            out[:, n - have:] = self._frames[:, cols]
            return out

    def level(self) -> tuple[float, float]:
        """(peak, rms) of the newest chunk in dBFS (-120 for silence)."""
        audio = self._audio  # one reference read: the producer never writes into a chunk it handed on
        if audio.size == 0:
            return -120.0, -120.0
        peak = float(np.max(np.abs(audio)))
        rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64))))
        to_db = lambda v: 20.0 * math.log10(v) if v > 1e-6 else -120.0  # noqa: E731
        return to_db(peak), to_db(rms)
