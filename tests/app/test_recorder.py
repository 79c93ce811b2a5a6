"""Recording: WAV/FLAC files are complete when stopped, and readable after the recorder is killed."""
from __future__ import annotations

import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf

from melsynth.app.recorder import Recorder, RecorderError
from tests.paths import REPO

SR = 11025


def sine(n0: int, n: int) -> np.ndarray:
    return (0.5 * np.sin(2 * np.pi * 440.0 * np.arange(n0, n0 + n) / SR)).astype(np.float32)


@pytest.mark.parametrize("ext", ["wav", "flac"])
def test_recording_stopped_normally_is_complete(tmp_path, ext):
    rec = Recorder(tmp_path / f"take.{ext}", SR).start()
    pushed = 0
    for size in (100, 256, 1000, 4096, 7, 5000):  # odd chunk sizes, as a producer delivers them
        rec.push(sine(pushed, size))
        pushed += size
    rec.push(np.array([np.nan, np.inf, -5.0], dtype=np.float32))  # never poisons the file
    pushed += 3
    info = rec.stop()
    audio, rate = sf.read(tmp_path / f"take.{ext}", dtype="float32")
    assert rate == SR and info.frames == pushed == audio.shape[0]
    assert np.max(np.abs(audio[:-3] - sine(0, pushed - 3))) < 1e-3
    assert np.allclose(audio[-3:], [0.0, 0.0, -1.0], atol=1e-3)
    assert rec.error is None


@pytest.mark.parametrize("ext", ["wav", "flac"])
def test_recording_killed_mid_take_is_readable_up_to_about_the_last_second(tmp_path, ext):
    path = tmp_path / f"killed.{ext}"
    proc = subprocess.Popen([sys.executable, "-m", "melsynth.cli", "recorder", "tone", str(path), "30"],
                            stdout=subprocess.PIPE, text=True, cwd=REPO)
    pushed = on_disk = 0
    deadline = time.monotonic() + 60
    try:
        for line in proc.stdout:
            parts = line.split()
            if parts[0] == "pushed":
                pushed, on_disk = int(parts[1]), int(parts[3])
            if pushed >= int(2.6 * SR) or time.monotonic() > deadline:
                break
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    assert pushed >= int(2.6 * SR), "the recorder subprocess did not get going"
    audio, rate = sf.read(path, dtype="float32")
    assert rate == SR
    # everything up to about a second (plus one FLAC frame) before the kill is there, and right
    assert audio.shape[0] >= on_disk >= pushed - int(1.5 * SR)
    assert np.max(np.abs(audio - sine(0, audio.shape[0]))) < 1e-3


def test_bad_extension_and_unwritable_path(tmp_path):
    with pytest.raises(RecorderError, match="wav or .flac"):
        Recorder(tmp_path / "take.mp3", SR)
    (tmp_path / "file").write_text("x")
    with pytest.raises((RecorderError, OSError)):
        Recorder(tmp_path / "file" / "take.wav", SR).start()


def test_a_folder_that_cannot_be_created_is_refused_before_the_take(tmp_path):
    (tmp_path / "file").write_text("x")
    rec = Recorder(tmp_path / "file" / "sub" / "take.wav", SR)
    with pytest.raises(RecorderError, match="cannot record"):
        rec.start()
    assert not rec.recording


def test_a_nearly_full_disk_is_refused_before_the_take(tmp_path, monkeypatch):
    import shutil

    from melsynth.app import recorder

    monkeypatch.setattr(recorder.shutil, "disk_usage", lambda _p: shutil._ntuple_diskusage(10**9, 10**9, 1000))
    with pytest.raises(RecorderError, match="MB free"):
        Recorder(tmp_path / "take.wav", SR).start()
    assert not (tmp_path / "take.wav").exists()


def test_a_disk_error_while_writing_ends_the_take_with_the_error(tmp_path):
    rec = Recorder(tmp_path / "take.wav", SR).start()
    rec.push(sine(0, 1024))
    deadline = time.monotonic() + 5
    while rec.seconds == 0 and time.monotonic() < deadline:
        time.sleep(0.01)

    def full(_block):
        raise OSError(28, "No space left on device")

    rec._file.write = full
    rec.push(sine(1024, 1024))
    while rec.recording and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not rec.recording
    assert rec.error and "take.wav" in rec.error and "No space left" in rec.error
    rec.push(sine(2048, 1024))  # after the error nothing more is queued
    assert rec._queue.empty()
    audio, _ = sf.read(tmp_path / "take.wav")
    assert audio.shape[0] == 1024  # what was written before the error stays readable
