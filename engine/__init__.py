"""melsynth runtime: numpy + onnxruntime only (no torch, no Qt).

Layers, each importing only the ones before it::

    errors, atomic   the CLI's one-line error; atomic file writes
    kernels          whether numba kernels compile now or are left for later (the app's start)
    dsp/             mel features, STFT inversion, magnitude, phase, resampling, safety
    runtime/         bundle.json contract, ONNX sessions, the prior and the vocoders
    device/          ring buffer, native device callback, output stream, thread priority
    stream/          controls, messages, sources, chain, pipeline, schedule, the Synth
    offline/         render, audio files, metrics, evaluation, bench, bundle tools
    cli/             handlers of the engine's commands

The names below are the public surface: what the app (and any other caller)
uses. They load on first use, so ``import melsynth.engine`` stays cheap.
"""
from __future__ import annotations

import importlib

_PUBLIC = {
    "MelsynthError": "errors",
    "atomic_write_json": "atomic",
    "MelSpec": "dsp.features",
    "QUALITIES": "dsp.quality",
    "LIVE_QUALITY": "dsp.quality",
    "describe_quality": "dsp.quality",
    "finite_float": "argtypes",
    "int_range": "argtypes",
    "FeatureError": "dsp.features",
    "BundleError": "runtime.bundle",
    "ModelBundle": "runtime.bundle",
    "load_bundle": "runtime.bundle",
    "default_bundle_path": "runtime.bundle",
    "repo_root": "runtime.bundle",
    "list_output_devices": "device.output",
    "single_threaded_blas": "device.priority",
    "Controls": "stream.controls",
    "WALK_SPEED": "stream.controls",
    "WALK_SPREAD": "stream.controls",
    "base_point": "stream.controls",
    "seeded_point": "stream.controls",
    "file_log_mel": "stream.sources",
    "SynthConfig": "stream.config",
    "Synth": "stream.synth",
    "SynthStatus": "stream.synth",
    "KernelWarmup": "stream.warmup",
    "defer_kernels": "stream.warmup",
    "add_lead_argument": "cli.headless",
    "lead_config": "cli.headless",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    """``engine.<public name>``, looked up in its module at each access."""
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC))
