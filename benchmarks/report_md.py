"""The pieces of ``benchmarks/report.sh``: the machine as JSON, and docs/benchmarks.md from the figures.

    python benchmarks/report_md.py machine          > machine.json
    python benchmarks/report_md.py markdown WORKDIR > docs/benchmarks.md

WORKDIR holds what report.sh wrote: machine.json, corpus.txt, bench.json, and when they ran
vocoder.json (``melsynth eval vocoder --json``) and prior_<bundle>.json (``melsynth eval prior
--json``). Standard library only.
"""
from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

VOCODER_COMMAND = "melsynth eval vocoder --bundle models/default --corpus CORPUS --split test --max-clips 16 --seconds 30"
PRIOR_COMMAND = "melsynth eval prior --bundle models/NAME --corpus CORPUS"
PRIOR_ROWS = (  # the metrics of eval prior worth a row, in order; others follow as they come
    ("fd_ratio", "fd_ratio: FD-mel / the real-vs-real floor (lower is better)"),
    ("fd_mel", "FD-mel"), ("fd_floor", "FD-mel floor (train vs test, real)"),
    ("fd_ratio_gaussian", "fd_ratio of Gaussian frames (baseline)"),
    ("fd_ratio_shuffled", "fd_ratio of time-shuffled frames (baseline)"),
    ("spread_ratio", "spread of window spectra, model / test (1 is alike)"),
    ("ndb", "NDB: bins that differ"), ("ndb_bins", "NDB bins"),
    ("ndb_floor_train", "NDB floor: other train frames"), ("ndb_floor", "NDB floor: test-split frames"),
    ("windows", "windows"), ("seconds", "seconds to score"),
)


def machine() -> dict:
    """CPU model, cores, memory, OS, date and the versions that set the speeds."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        mem_kb = int(next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                          if line.startswith("MemTotal")))
        memory = f"{mem_kb / 2**20:.1f} GiB"
    except (OSError, StopIteration, ValueError):
        memory = "unknown"
    versions = {}
    for package in ("melsynth", "numpy", "onnxruntime", "numba", "scipy", "soxr"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "absent"
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    return {"cpu": cpu, "cores": os.cpu_count(), "memory": memory,
            "os": f"{platform.system()} {platform.release()}", "python": platform.python_version(),
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "load_average": " ".join(f"{x:.2f}" for x in os.getloadavg()), "commit": commit,
            "versions": versions}


def _value(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if v is None:
        return "–"
    return str(v)


def _table(header: list[str], rows: list[list]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    out += ["| " + " | ".join(_value(v) for v in row) + " |" for row in rows]
    return out


def machine_section(m: dict) -> list[str]:
    versions = ", ".join(f"{k} {v}" for k, v in m["versions"].items())
    return ["## Machine", "",
            *_table(["", ""], [["CPU", m["cpu"]], ["cores", m["cores"]], ["memory", m["memory"]],
                               ["OS", m["os"]], ["Python", m["python"]], ["date", m["date"]],
                               ["load average at the start", m["load_average"]], ["commit", m["commit"]],
                               ["versions", versions]]), ""]


def bench_section(bench: dict) -> list[str]:
    rows = [[f"`{k}`", v] for k, v in bench.items() if not isinstance(v, (dict, list))]
    config = bench.get("config")
    lines = ["## Engine: `melsynth bench --json`", "",
             "The shipped bundle (`models/default`, its default vocoder); every model on 1 thread. `*_rtf`: x real "
             "time; `latency_ms_*`: knob to sound on a real-time fake 48 kHz device with 256-sample blocks. "
             "The figures are defined in `engine/offline/bench.py`.", "",
             *_table(["figure", "value"], rows), ""]
    if isinstance(config, dict):
        lines += ["Engine settings: " + ", ".join(f"`{k}` {v}" for k, v in config.items()) + ".", ""]
    return lines


def vocoder_section(report: dict) -> list[str]:
    gl = report.get("griffin_lim", {})
    rows = [[f"`{name}`", v.get("kind"), v.get("mr_stft_ratio"), v.get("log_mel_ratio"),
             v.get("x_realtime_offline"), v.get("x_realtime_streaming_1_frame"), v.get("latency_ms")]
            for name, v in report.get("vocoders", {}).items()]
    return ["## Vocoders: `melsynth eval vocoder`", "",
            f"`{VOCODER_COMMAND}`: {report.get('clips')} clips, {_value(report.get('seconds'))} s of audio. "
            f"Ratios are to Griffin-Lim with {gl.get('iterations')} iterations on the same mel (lower is better); "
            "speeds are x real time on 1 thread.", "",
            *_table(["vocoder", "kind", "MR-STFT / GL", "log-mel / GL", "x RT offline", "x RT streaming (1 frame)",
                     "latency ms"], rows), ""]


def prior_section(reports: dict[str, dict]) -> list[str]:
    names = sorted(reports)
    keys = [k for k, _ in PRIOR_ROWS if any(k in r for r in reports.values())]
    keys += sorted({k for r in reports.values() for k, v in r.items()
                    if k not in keys and isinstance(v, (int, float)) and not isinstance(v, bool)})
    labels = dict(PRIOR_ROWS)
    rows = [[labels.get(k, f"`{k}`"), *[reports[n].get(k) for n in names]] for k in keys]
    return ["## Priors: `melsynth eval prior`", "",
            f"`{PRIOR_COMMAND}`: generated windows against the corpus's test split; definitions in "
            "`training/prior/evaluate.py`.", "",
            *_table(["figure", *[f"`models/{n}`" for n in names]], rows), ""]


def markdown(work: Path) -> str:
    corpus = (work / "corpus.txt").read_text().strip()
    lines = ["# Benchmarks", "",
             "Written by `bash benchmarks/report.sh CORPUS` from the figures below; run it again to replace them. "
             f"Corpus: `{corpus}`.", ""]
    lines += machine_section(json.loads((work / "machine.json").read_text()))
    lines += bench_section(json.loads((work / "bench.json").read_text()))
    vocoder = work / "vocoder.json"
    if vocoder.is_file():
        lines += vocoder_section(json.loads(vocoder.read_text()))
    else:
        lines += ["## Vocoders: `melsynth eval vocoder`", "", "Not run in this report (`--skip-vocoder-eval`).", ""]
    priors = {p.stem[len("prior_"):]: json.loads(p.read_text()) for p in sorted(work.glob("prior_*.json"))}
    if priors:
        lines += prior_section(priors)
    else:
        lines += ["## Priors: `melsynth eval prior`", "", "Not run in this report (`--skip-prior-eval`).", ""]
    walk = work / "walk.jsonl"
    if walk.is_file() and walk.read_text().strip():
        lines += walk_section([json.loads(line) for line in walk.read_text().splitlines() if line.strip()])
    return "\n".join(lines).rstrip() + "\n"


def walk_section(rows: list[dict]) -> list[str]:
    """Render statistics of models/default per latent-walk setting (``benchmarks/walk_settings.py``)."""
    keys = ("onset_rate", "flatness", "contrast_db", "chroma_movement")
    out = ["## Walk settings: `python benchmarks/walk_settings.py`", "",
           "Renders of `models/default` (seeds 1-4, 20 s each) per walk speed and spread; the defaults are "
           "`engine/stream/controls.py`'s `WALK_SPEED`, `WALK_SPREAD`.", "",
           "| speed | spread | " + " | ".join(keys) + " |", "|" + " --- |" * (2 + len(keys))]
    for r in rows:
        out.append(f"| {r['walk_speed']} | {r['walk_spread']} | " + " | ".join(f"{r[k]:.4g}" for k in keys) + " |")
    return out + [""]


def main(argv: list[str]) -> int:
    if argv[:1] == ["machine"]:
        print(json.dumps(machine(), indent=2))
    elif argv[:1] == ["markdown"] and len(argv) == 2:
        sys.stdout.write(markdown(Path(argv[1])))
    elif argv[:1] in (["-h"], ["--help"]):
        print(__doc__)
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
