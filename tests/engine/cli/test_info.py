"""``melsynth bundle info``: a short summary by default, everything with ``--json``."""
from __future__ import annotations

import json

import pytest

from melsynth.cli.main import main
from tests.vocoder_fixtures import write_bundle


@pytest.fixture
def bundle(tmp_path):
    figures = {"mr_stft_ratio": 0.9612, "log_mel_ratio": 0.8421, "x_realtime_streaming_1_frame": 41.0,
               "latency_ms": 92.9, "command": "melsynth eval vocoder", "machine": "x86_64"}
    return write_bundle(tmp_path / "mybundle", {
        "classical": {"kind": "classical", "params": {}, "figures": figures},
        "quick": {"kind": "classical", "params": {"iterations": 2}},
    })


def test_info_prints_a_short_summary(bundle, capsys):
    assert main(["bundle", "info", "--bundle", str(bundle)]) == 0
    out = capsys.readouterr().out
    lines = out.strip().splitlines()
    assert len(lines) < 15
    assert "'mybundle'" in lines[0] and str(bundle) in lines[0] and ("kB" in lines[0] or "MB" in lines[0])
    assert any(line.startswith("prior: none") for line in lines)
    row = next(line for line in lines if "classical" in line and "*" in line)
    assert "0.961" in row and "0.842" in row and "41x real time" in row and "93 ms" in row
    assert any("quick" in line and "no figures" in line for line in lines)
    assert "machine" not in out and not out.lstrip().startswith("{")


def test_info_json_has_everything(bundle, capsys):
    assert main(["bundle", "info", "--json", "--bundle", str(bundle)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["name"] == "mybundle" and data["default_vocoder"] == "classical"
    assert data["vocoders"]["classical"]["figures"]["machine"] == "x86_64"
    assert set(data["vocoders"]) == {"classical", "quick"}


def test_vocoder_help_names_the_default_bundles_vocoders(bundle, capsys, monkeypatch):
    monkeypatch.setenv("MELSYNTH_BUNDLE", str(bundle))
    for command in (["render"], ["play"], ["resynth"]):
        with pytest.raises(SystemExit):
            main(command + ["--help"])
        out = " ".join(capsys.readouterr().out.split())
        assert "classical, quick" in out, command
        assert out.count("(default: the bundle's default") == 1
