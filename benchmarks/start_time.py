"""The app's start, as a musician meets it: window on screen and first sound, cold and warm.

    .venv/bin/python benchmarks/start_time.py [--runs 3] [--quit-after 6] [--device system]

Runs ``melsynth app --device DEVICE --quit-after S`` under offscreen Qt into a JACK device
(a dummy server is started at 11025 Hz if none runs, and stopped after) and prints, for
each run, the times ``--quit-after`` reports from process start: window on screen, first
sound, and when the compiled numba kernels took over from the numpy paths.

* cold: each run with an empty numba cache (``NUMBA_CACHE_DIR`` a new folder);
* warm: runs sharing one cache, filled by an unreported first run.

Targets (issue 20): first sound within 3,000 ms cold and 1,500 ms warm; window within 1 s.
The figures depend on the machine's load: note what else runs when quoting them.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIGURES = {  # column -> the line --quit-after prints it in
    "window": re.compile(r"startup: window on screen (\d+) ms"),
    "ready": re.compile(r"startup: window and models ready (\d+) ms"),
    "sound": re.compile(r"start-to-first-sound: (\d+) ms"),
    "kernels": re.compile(r"kernels: compiled kernels in use (\d+) ms"),
}


def jack_running() -> bool:
    return shutil.which("jack_lsp") is not None and subprocess.run(
        ["jack_lsp"], capture_output=True, env=dict(os.environ, JACK_NO_START_SERVER="1")).returncode == 0


def start_jack() -> subprocess.Popen | None:
    """A dummy JACK server at the model rate if none runs (None: one runs already)."""
    if jack_running():
        return None
    server = subprocess.Popen(["jackd", "--no-realtime", "-d", "dummy", "-r", "11025", "-p", "256"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    subprocess.run(["jack_wait", "-w", "-t", "10"], capture_output=True)
    return server


def run_app(args, env: dict) -> dict[str, int | None]:
    cmd = [sys.executable, "-m", "melsynth.cli", "app", "--device", args.device, "--quit-after", str(args.quit_after)]
    if args.bundle:
        cmd += ["--bundle", args.bundle]
    out = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=args.quit_after + 120)
    if out.returncode != 0:
        raise SystemExit(f"start_time: the app failed (exit {out.returncode}): {out.stderr.strip()[-500:]}")
    found = {}
    for name, pattern in FIGURES.items():
        m = pattern.search(out.stdout)
        found[name] = int(m.group(1)) if m else None
    if found["sound"] is None:
        line = next((ln for ln in out.stdout.splitlines() if ln.startswith("start-to-first-sound")), out.stdout)
        raise SystemExit(f"start_time: no sound: {line.strip()}")
    if found["window"] is None:  # a start that shows the window only once the models are loaded
        found["window"] = found["ready"]
    found["preparing"] = "kernels: still preparing" in out.stdout
    return found


def fill_cache(args, env: dict) -> None:
    """One unreported run; if its kernels were still compiling when it quit, compile them here."""
    if run_app(args, env)["preparing"]:
        code = ("from melsynth.engine import load_bundle, default_bundle_path\n"
                "from melsynth.engine.runtime.vocoder import classical_config\n"
                "from melsynth.engine.stream.warmup import compile_all\n"
                f"b = load_bundle({args.bundle!r} or default_bundle_path())\n"
                "_, iterations = classical_config(b.vocoder(b.default_vocoder).params)\n"
                "compile_all(b.mel, (iterations,))\n")
        subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, check=True)


def show(label: str, rows: list[dict]) -> None:
    def cell(v):
        return f"{v:>8}" if v is not None else "       -"

    for i, r in enumerate(rows, 1):
        print(f"  {label} run {i}   {cell(r['window'])} {cell(r['sound'])} {cell(r['kernels'])}")
    med = {k: statistics.median([r[k] for r in rows if r[k] is not None] or [0]) for k in ("window", "sound")}
    print(f"  {label} median  {med['window']:>8.0f} {med['sound']:>8.0f}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=3, help="runs each, cold and warm")
    p.add_argument("--quit-after", type=float, default=6.0, help="seconds each run plays")
    p.add_argument("--device", default="system", help="JACK output device")
    p.add_argument("--bundle", default=None, help="model bundle (default: models/default)")
    args = p.parse_args()
    server = start_jack()
    work = Path(tempfile.mkdtemp(prefix="melsynth-start-"))
    base = dict(os.environ, QT_QPA_PLATFORM="offscreen", JACK_NO_START_SERVER="1",
                XDG_CONFIG_HOME=str(work / "config"), MELSYNTH_RECORDINGS=str(work / "recordings"))
    try:
        load = os.getloadavg()[0]
        print(f"melsynth app --device {args.device} --quit-after {args.quit_after:g}: offscreen Qt, JACK; "
              f"{os.cpu_count()} cores, load {load:.1f}; {time.strftime('%Y-%m-%d %H:%M')}")
        print("  ms from process start    window    sound  kernels")
        cold = [run_app(args, dict(base, NUMBA_CACHE_DIR=str(work / f"cold-{i}"))) for i in range(args.runs)]
        show("cold", cold)
        warm_env = dict(base, NUMBA_CACHE_DIR=str(work / "warm"))
        fill_cache(args, warm_env)
        warm = [run_app(args, warm_env) for _ in range(args.runs)]
        show("warm", warm)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if server is not None:
            server.terminate()
            server.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
