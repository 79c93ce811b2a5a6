"""corpus add: any audio folder (MusicNet layout too); broken files skipped and named."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from melsynth.cli.main import main
from melsynth.training.corpus.ingest import AddConfig, add_audio
from melsynth.training.corpus.manifest import read_manifest


def _tone(seconds: float, sr: int, freq: float = 330.0, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    x = 0.3 * np.sin(2 * np.pi * freq * t) * (1 + 0.5 * np.sin(2 * np.pi * 0.7 * t))
    return np.stack([x] * channels, axis=1) if channels > 1 else x


@pytest.fixture()
def user_folder(tmp_path):
    src = tmp_path / "my music"
    (src / "artistA").mkdir(parents=True)
    sf.write(src / "artistA" / "piece1.wav", _tone(1.5, 44100, channels=2), 44100)
    sf.write(src / "artistA" / "piece2.flac", _tone(1.0, 22050, 440), 22050)
    sf.write(src / "loose.ogg", _tone(1.0, 16000, 220), 16000, format="OGG", subtype="VORBIS")
    (src / "empty.wav").write_bytes(b"")
    (src / "corrupt.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunkjunkjunk" + bytes(range(200)))
    sf.write(src / "silent.wav", np.zeros(8000), 8000)
    (src / "notes.txt").write_text("not audio, not even looked at")
    return src


def test_add_ingests_good_files_and_names_broken_ones(user_folder, tmp_path, capsys):
    out = tmp_path / "corpus"
    rc = main(["corpus", "add", str(user_folder), "--out", str(out), "--jobs", "1", "--no-progress"])
    text = capsys.readouterr().out
    assert rc == 0
    manifest = read_manifest(out)
    assert sorted(e.source.rsplit("/", 1)[1] for e in manifest.files) == ["loose.ogg", "piece1.wav", "piece2.flac"]
    for e in manifest.files:
        info = sf.info(str(out / e.path))
        assert (info.samplerate, info.channels) == (11025, 1)
        assert info.frames == e.samples
        assert e.origin == "added" and e.split in ("train", "validation", "test")
    durations = {e.source.rsplit("/", 1)[1]: e.duration for e in manifest.files}
    assert durations["piece1.wav"] == pytest.approx(1.5, abs=0.01)
    assert {e.composer for e in manifest.files if "artistA" in e.source} == {"artistA"}
    assert {e.composer for e in manifest.files if "loose" in e.source} == {"unknown"}

    failures = {f["source"].rsplit("/", 1)[1]: f["reason"] for f in manifest.failures}
    assert set(failures) == {"empty.wav", "corrupt.wav", "silent.wav"}
    assert "empty" in failures["empty.wav"]
    assert "unreadable" in failures["corrupt.wav"]
    assert "silent" in failures["silent.wav"]
    for name in ("empty.wav", "corrupt.wav", "silent.wav"):
        assert name in text          # the CLI names each skipped file ...
    assert failures["corrupt.wav"] in text   # ... with its reason

    # Re-running adds nothing new; the broken files are still reported.
    again = add_audio(AddConfig(src=str(user_folder), out=str(out), jobs=1, progress=False),
                      log=lambda *a: None)
    assert again.added == 0 and again.skipped == 3 and len(again.failed) == 3
    assert len(read_manifest(out).files) == 3


def test_musicnet_layout_uses_metadata_for_works(tmp_path):
    src = tmp_path / "musicnet"
    for folder, ids in (("train_data", ("1727", "1728", "2150")), ("test_data", ("2303",))):
        (src / folder).mkdir(parents=True)
        for i, id_ in enumerate(ids):
            sf.write(src / folder / f"{id_}.wav", _tone(0.6, 44100, 200 + 50 * i), 44100)
    (src / "musicnet_metadata.csv").write_text(
        "id,composer,composition,movement,ensemble,source,transcriber,catalog_name,seconds\n"
        "1727,Schubert,Piano Quintet in A major,2. Andante,Piano Quintet,x,y,D667,447\n"
        "1728,Schubert,Piano Quintet in A major,3. Scherzo,Piano Quintet,x,y,D667,251\n"
        "2150,Bach,Cello Suite 4,1. Prelude,Solo Cello,x,y,BWV1010,1\n"
        "2303,Bach,Cello Suite 4,2. Allemande,Solo Cello,x,y,BWV1010,1\n")
    out = tmp_path / "corpus"
    report = add_audio(AddConfig(src=str(src), out=str(out), jobs=1, progress=False), log=lambda *a: None)
    assert report.added == 4 and report.failed == []
    by_id = {e.source.rsplit("/", 1)[1]: e for e in read_manifest(out).files}
    assert by_id["1727.wav"].work == by_id["1728.wav"].work
    assert by_id["1727.wav"].split == by_id["1728.wav"].split
    assert by_id["2150.wav"].work == by_id["2303.wav"].work != by_id["1727.wav"].work
    assert by_id["2150.wav"].split == by_id["2303.wav"].split   # train_data and test_data: one work, one split
    assert by_id["1727.wav"].composer == "schubert"
    assert by_id["1727.wav"].instrumentation == "piano_quintet"


def test_add_missing_source_is_a_clear_error(tmp_path, capsys):
    rc = main(["corpus", "add", str(tmp_path / "nowhere"), "--out", str(tmp_path / "c"), "--no-progress"])
    assert rc == 2
    assert "nowhere" in capsys.readouterr().err


def test_sigterm_saves_what_is_done_and_a_rerun_finishes(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    src = tmp_path / "many"
    src.mkdir()
    for i in range(40):
        sf.write(src / f"clip{i:02d}.wav", _tone(0.5, 11025, 200 + 10 * i), 11025)
    out = tmp_path / "corpus"
    code = ("import sys; from melsynth.cli.main import main; "
            f"sys.exit(main(['corpus', 'add', {str(src)!r}, '--out', {str(out)!r}, '--jobs', '1', '--no-progress']))")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while len(list(out.glob("audio/**/*.flac"))) < 3 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)     # the parent records a file a moment after the worker wrote it
    proc.send_signal(signal.SIGTERM)
    _stdout, stderr = proc.communicate(timeout=60)
    if proc.returncode == 0:
        pytest.skip("the add finished before the signal arrived")
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
    assert not (out / ".lock").exists()
    saved = read_manifest(out).files
    assert 1 <= len(saved) < 40
    assert all((out / e.path).is_file() for e in saved)

    rest = add_audio(AddConfig(src=str(src), out=str(out), jobs=1, progress=False), log=lambda *a: None)
    assert rest.skipped == len(saved) and rest.added == 40 - len(saved)
    assert len(read_manifest(out).files) == 40
