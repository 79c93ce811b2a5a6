"""``SynthConfig``: the live engine's settings, frozen (saved with each bench run)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SynthConfig:
    """Engine settings (saved with a bench run; the defaults are the shipped ones).

    frames_per_step:  mel frames per producer step (1 = lowest knob latency)
    target_ms:        the producer delivers at least this long before the device would run short
                      (``engine.stream.schedule``), and earlier when its recent steps need more: the
                      slowest recent step of the kind due (with or without the prior's work)
                      plus its own slowest recent wake-up
    target_max_ms:    each underrun adds 4 ms to that, up to this much added (0 = never adapt)
    ring_seconds:     ring capacity
    knob_crossfade_frames:   mel crossfade after a knob move (latent source)
    source_crossfade_frames: mel crossfade when the source changes
    swap_crossfade_ms:       audio crossfade when the bundle or vocoder is hot-swapped
    limiter_threshold, dc_cutoff_hz: safety stage
    record_events:    keep (frame, command) of everything applied, for offline replay
    declick_ms:       ramps at the device's edges (engine.device.ringbuffer): into and out of an
                      underrun's gap, at stop, and when play resumes a sound; 0 = hard edges
    """

    frames_per_step: int = 1
    target_ms: float = 0.0
    target_max_ms: float = 32.0
    ring_seconds: float = 0.5
    knob_crossfade_frames: int = 3
    source_crossfade_frames: int = 8
    swap_crossfade_ms: float = 150.0
    limiter_threshold: float = 0.9
    dc_cutoff_hz: float = 10.0
    record_events: bool = False
    tap_frames: int = 512
    declick_ms: float = 3.0

    def __post_init__(self) -> None:
        if not self.declick_ms >= 0:
            raise ValueError(f"declick_ms must be >= 0, got {self.declick_ms}")
        if self.frames_per_step < 1:
            raise ValueError(f"frames_per_step must be >= 1, got {self.frames_per_step}")
        if not self.ring_seconds > 0:
            raise ValueError(f"ring_seconds must be positive, got {self.ring_seconds}")
        if not 0 <= self.target_ms < 1e3 * self.ring_seconds:
            raise ValueError(f"target_ms must be >= 0 and below the ring's {1e3 * self.ring_seconds:g} ms, "
                             f"got {self.target_ms}")
