"""Tiny ONNX vocoder graphs built on the fly (random weights: test fixtures, never shipped).

Both kinds share one causal layout: output frame ``t`` reads mel frames
``t + L - 2 .. t + L`` through a width-3 convolution, ``L`` = look-ahead::

    offline:    pad 2 - L frames of 0 on the left, L frames of silence (log floor)
                on the right, valid convolution  -> F output frames, aligned
    streaming:  state = the last 2 mel frames pushed (zeros at reset); output j
                reads frames j-2 .. j, so it stands for frame j - L

which is the bundle's alignment contract for ``lookahead_frames = L``.
"""
from __future__ import annotations

from pathlib import Path

from melsynth.engine.dsp.features import MelSpec
from melsynth.engine.runtime.bundle import SCHEMA_VERSION, StateSpec, TensorSpec, graph_entry, write_bundle_json

CONTEXT = 2  # frames of left context carried as state


def _modules(spec: MelSpec, out_channels: int, lookahead: int, scale: float):
    import torch

    class Core(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv1d(spec.n_mels, out_channels, CONTEXT + 1)
            with torch.no_grad():
                self.conv.weight.mul_(scale)
                self.conv.bias.mul_(scale)

        def forward(self, x):  # (1, n_mels, frames + CONTEXT) -> (1, out_channels, frames)
            return self.conv(x + 5.0)  # log mel in about [-5, 2]: centre it

    class Offline(torch.nn.Module):
        def __init__(self, core):
            super().__init__()
            self.core = core

        def forward(self, mel):
            left = torch.zeros(1, spec.n_mels, CONTEXT - lookahead)
            right = torch.full((1, spec.n_mels, lookahead), spec.log_min)
            return self.core(torch.cat([left, mel, right], dim=2))

    class Streaming(torch.nn.Module):
        def __init__(self, core):
            super().__init__()
            self.core = core

        def forward(self, mel, state_in_0):
            x = torch.cat([state_in_0, mel], dim=2)
            return self.core(x), x[:, :, -CONTEXT:]

    torch.manual_seed(1234 + lookahead)
    core = Core()
    return Offline(core), Streaming(core)


def _export(root: Path, stem: str, spec: MelSpec, offline, streaming, outputs: list[str], out_shapes: list[tuple],
            lookahead: int, frames_per_step: int | None, wrap=None) -> dict:
    import torch

    from melsynth.training.onnx_export import export_onnx

    wrap = wrap or (lambda m: m)
    dyn = {"mel": {2: "frames"}}
    dyn.update({o: {len(s) - 1: "out"} for o, s in zip(outputs, out_shapes)})
    steps = frames_per_step or 3
    state_shape = (1, spec.n_mels, CONTEXT)
    off_err = export_onnx(wrap(offline), [torch.randn(1, spec.n_mels, 5) - 2], root / f"{stem}.onnx",
                          ["mel"], outputs, dyn)
    st_err = export_onnx(wrap(streaming, state=True),
                         [torch.randn(1, spec.n_mels, steps) - 2, torch.zeros(state_shape)],
                         root / f"{stem}_stream.onnx", ["mel", "state_in_0"], outputs + ["state_out_0"], dyn)
    assert off_err < 1e-4 and st_err < 1e-4
    ins = [TensorSpec("mel", (1, spec.n_mels, "frames"))]
    outs = [TensorSpec(o, s) for o, s in zip(outputs, out_shapes)]
    state = [StateSpec("state_in_0", "state_out_0", state_shape)]
    return {
        "offline": graph_entry(root, root / f"{stem}.onnx", ins, outs),
        "streaming": graph_entry(root, root / f"{stem}_stream.onnx", ins + [TensorSpec("state_in_0", state_shape)],
                                 # the exporter cannot prove the sliced state's length: symbolic in ONNX
                                 outs + [TensorSpec("state_out_0", (1, spec.n_mels, "context"))], state,
                                 lookahead_frames=lookahead, frames_per_step=frames_per_step),
    }


def ap_entry(root: Path, spec: MelSpec, lookahead: int = 0, frames_per_step: int | None = None,
             params: dict | None = None, stem: str = "ap") -> dict:
    """An amplitude_phase vocoder: ``mel -> real, imag`` with a 2-frame state."""
    import torch

    offline, streaming = _modules(spec, 2 * spec.n_freqs, lookahead, scale=0.3)

    def wrap(m, state=False):
        class Split(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.m = m

            def forward(self, *args):
                out = self.m(*args)
                y = out[0] if state else out
                parts = (y[:, :spec.n_freqs], y[:, spec.n_freqs:])
                return parts + (out[1],) if state else parts

        return Split()

    shape = (1, spec.n_freqs, "frames")
    entry = _export(root, stem, spec, offline, streaming, ["real", "imag"], [shape, shape], lookahead,
                    frames_per_step, wrap)
    return {"kind": "amplitude_phase", "params": params or {}, **entry}


def melgan_entry(root: Path, spec: MelSpec, lookahead: int = 0, frames_per_step: int | None = None,
                 stem: str = "melgan") -> dict:
    """A melgan vocoder: ``mel -> audio`` (hop samples per frame) with a 2-frame state."""
    import torch

    offline, streaming = _modules(spec, spec.hop_length, lookahead, scale=0.002)

    def wrap(m, state=False):
        class ToAudio(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.m = m

            def forward(self, *args):
                out = self.m(*args)
                y = out[0] if state else out
                audio = torch.tanh(y).transpose(1, 2).reshape(1, -1)  # frame t -> samples t*hop..
                return (audio, out[1]) if state else audio

        return ToAudio()

    return {"kind": "melgan", "params": {},
            **_export(root, stem, spec, offline, streaming, ["audio"], [(1, "samples")], lookahead,
                      frames_per_step, wrap)}


def write_bundle(root: Path, vocoders: dict, spec: MelSpec | None = None, default: str | None = None) -> Path:
    spec = spec or MelSpec()
    root.mkdir(parents=True, exist_ok=True)
    write_bundle_json(root, {"schema_version": SCHEMA_VERSION, "name": root.name, "mel": spec.to_dict(),
                             "default_vocoder": default or next(iter(vocoders)), "vocoders": vocoders})
    return root
