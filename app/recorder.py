"""Record what is heard to WAV or FLAC, readable even if the process dies mid-take.

``push(block)`` is called on the engine's producer thread with the audio that goes
to the device (after the safety stage); it only queues a copy. A writer thread
drains the queue into the file and, about once a second, makes what is on disk
a complete file:

- WAV: libsndfile's ``flush`` rewrites the RIFF and data chunk sizes.
- FLAC: libFLAC writes each frame as soon as it is complete (a frame of
  ``blocksize`` samples is emitted once ``blocksize + 1`` samples are queued), but
  STREAMINFO's total-samples field is only filled in on close. Every second the
  writer patches that field to the samples in complete frames, so a killed file
  decodes to that point::

      fLaC | hdr(4) | STREAMINFO 34 bytes:  minblk(16) maxblk(16) minfrm(24) maxfrm(24)
                                             rate(20) ch-1(3) bps-1(5) TOTAL(36) md5(128)
      byte offset 8                          ^18                       ^21 low nibble .. 25

A kill loses at most the last second plus one FLAC frame (0.37 s at 11025 Hz).
"""
from __future__ import annotations

import os
import queue
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FORMATS = {".wav": "WAV", ".flac": "FLAC"}
FLUSH_SECONDS = 1.0
MIN_FREE_BYTES = 10_000_000  # about 7 minutes of 16-bit mono at 11025 Hz


class RecorderError(Exception):
    pass


@dataclass(frozen=True)
class RecordingInfo:
    path: Path
    frames: int
    sample_rate: int

    @property
    def seconds(self) -> float:
        return self.frames / self.sample_rate


def format_for(path: str | os.PathLike) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise RecorderError(f"{path}: record to .wav or .flac, not {suffix or 'no extension'!r}")
    return FORMATS[suffix]


def _patch_flac_total_samples(path: Path, total: int) -> None:
    """Write ``total`` into STREAMINFO's 36-bit total-samples field (see module docstring)."""
    with open(path, "r+b") as f:
        head = f.read(26)
        if len(head) < 26 or head[:4] != b"fLaC" or (head[4] & 0x7F) != 0:
            return  # not (yet) a FLAC stream with STREAMINFO first: nothing to patch
        f.seek(21)
        byte21 = (head[21] & 0xF0) | ((total >> 32) & 0x0F)
        f.write(bytes([byte21]) + (total & 0xFFFFFFFF).to_bytes(4, "big"))
        f.flush()
        os.fsync(f.fileno())


def _flac_blocksize(path: Path) -> int | None:
    with open(path, "rb") as f:
        head = f.read(12)
    if len(head) < 12 or head[:4] != b"fLaC":
        return None
    min_block, max_block = int.from_bytes(head[8:10], "big"), int.from_bytes(head[10:12], "big")
    return max_block if min_block == max_block and max_block > 0 else None


def check_writable(folder: Path, min_free_bytes: int | None = None) -> None:
    """Create ``folder`` if needed and write a probe file there; OSError saying what is wrong.
    ``min_free_bytes``: None means ``MIN_FREE_BYTES``."""
    min_free_bytes = MIN_FREE_BYTES if min_free_bytes is None else min_free_bytes
    folder.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(folder).free
    if free < min_free_bytes:
        raise OSError(f"only {free / 1e6:.1f} MB free on the disk of {folder} "
                      f"(a take needs at least {min_free_bytes / 1e6:.0f} MB)")
    fd, probe = tempfile.mkstemp(prefix=".melsynth-probe-", dir=folder)
    try:
        os.write(fd, b"\0" * 4096)
        os.fsync(fd)
    finally:
        os.close(fd)
        os.unlink(probe)


class Recorder:
    """One take to one file. ``start()``, ``push()`` from any thread, ``stop()``."""

    def __init__(self, path: str | os.PathLike, sample_rate: int, channels: int = 1,
                 flush_seconds: float = FLUSH_SECONDS):
        self.path = Path(path)
        self.format = format_for(self.path)
        self.sample_rate = int(sample_rate)
        self.channels = int(channels)
        self.flush_seconds = float(flush_seconds)
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._frames = 0  # written to libsndfile (writer thread only)
        self.frames_on_disk = 0  # readable if the process died now
        self.error: str | None = None

    @property
    def recording(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def seconds(self) -> float:
        return self._frames / self.sample_rate

    def start(self) -> "Recorder":
        """Open the file after checking the folder takes it. RecorderError (one line) if not."""
        import soundfile as sf

        try:
            check_writable(self.path.parent)
            self._file = sf.SoundFile(str(self.path), "w", samplerate=self.sample_rate,
                                      channels=self.channels, format=self.format, subtype="PCM_16")
            self._file.flush()  # the header reaches the disk now, not at the first second of audio
        except (sf.LibsndfileError, OSError) as exc:
            raise RecorderError(f"{self.path}: cannot record: {exc}") from None
        self._thread = threading.Thread(target=self._run, name="melsynth-recorder", daemon=True)
        self._thread.start()
        return self

    def push(self, block: np.ndarray) -> None:
        """Queue audio (``(samples,)`` or ``(samples, channels)``, float in [-1, 1]). Never blocks."""
        if self._thread is not None and not self._stopping.is_set() and self.error is None:
            self._queue.put(np.array(block, dtype=np.float32, copy=True))

    def stop(self) -> RecordingInfo:
        if self._thread is not None:
            self._stopping.set()
            self._queue.put(None)
            self._thread.join()
            self._thread = None
        return RecordingInfo(self.path, self._frames, self.sample_rate)

    # writer thread ------------------------------------------------------------
    def _run(self) -> None:
        last_flush = time.monotonic()
        try:
            while True:
                try:
                    block = self._queue.get(timeout=0.2)
                except queue.Empty:
                    block = ...
                if block is None:
                    break
                if block is not ...:
                    block = np.clip(np.nan_to_num(block, nan=0.0, posinf=0.0, neginf=0.0), -1.0, 1.0)
                    self._file.write(block)
                    self._frames += len(block)
                if time.monotonic() - last_flush >= self.flush_seconds:
                    self._make_readable()
                    last_flush = time.monotonic()
        except Exception as exc:  # disk full, file removed: report, never take the app down
            self.error = f"{self.path}: recording stopped: {exc}"
        finally:
            try:
                self._file.close()  # writes the final header (and the FLAC MD5)
                self.frames_on_disk = self._frames
            except Exception as exc:
                self.error = self.error or f"{self.path}: cannot close: {exc}"

    def _make_readable(self) -> None:
        self._file.flush()
        if self.format == "WAV":
            self.frames_on_disk = self._frames
            return
        blocksize = _flac_blocksize(self.path)
        if blocksize is None:
            return
        complete = max(self._frames - 1, 0) // blocksize * blocksize
        _patch_flac_total_samples(self.path, complete)
        self.frames_on_disk = complete


def record_tone(out: Path, seconds: float) -> int:
    """Record a 440 Hz sine to ``out`` in real time, printing the frames pushed and on disk after
    each block (``melsynth recorder tone``: kill it mid-take and the file still reads). -> frames."""
    sr, block = 11025, 256
    rec = Recorder(out, sr).start()
    t0 = time.monotonic()
    n = 0
    while n < seconds * sr:
        k = np.arange(n, n + block)
        rec.push(0.5 * np.sin(2 * np.pi * 440.0 * k / sr))
        n += block
        print(f"pushed {n} on_disk {rec.frames_on_disk}", flush=True)
        delay = t0 + n / sr - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    info = rec.stop()
    print(f"done {info.frames}", flush=True)
    return info.frames
