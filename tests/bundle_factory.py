"""Tiny bundles built on the fly for tests (random weights: fixtures, never shipped)."""
from __future__ import annotations

from pathlib import Path

from melsynth.engine.dsp.features import MelSpec
from melsynth.engine.runtime.bundle import SCHEMA_VERSION, StateSpec, TensorSpec, graph_entry, write_bundle_json


def tiny_ap_graphs(root: Path, spec: MelSpec) -> dict:
    """An amplitude-phase-shaped vocoder entry: offline + streaming ONNX with one state tensor."""
    import torch

    from melsynth.training.onnx_export import export_onnx

    class Offline(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv1d(spec.n_mels, 2 * spec.n_freqs, 1)

        def forward(self, mel):
            out = self.conv(mel)
            return out[:, : spec.n_freqs], out[:, spec.n_freqs:]

    class Streaming(torch.nn.Module):
        def __init__(self, offline):
            super().__init__()
            self.offline = offline

        def forward(self, mel, state_in_0):
            real, imag = self.offline(mel)
            return real, imag, state_in_0 + mel.mean(dim=2, keepdim=True)

    torch.manual_seed(0)
    off = Offline()
    dyn = {"mel": {2: "frames"}, "real": {2: "frames"}, "imag": {2: "frames"}}
    export_onnx(off, [torch.randn(1, spec.n_mels, 5)], root / "voc.onnx", ["mel"], ["real", "imag"], dyn)
    export_onnx(Streaming(off), [torch.randn(1, spec.n_mels, 3), torch.zeros(1, spec.n_mels, 1)],
                root / "voc_stream.onnx", ["mel", "state_in_0"], ["real", "imag", "state_out_0"], dyn)
    ins = [TensorSpec("mel", (1, spec.n_mels, "frames"))]
    outs = [TensorSpec("real", (1, spec.n_freqs, "frames")), TensorSpec("imag", (1, spec.n_freqs, "frames"))]
    state = [StateSpec("state_in_0", "state_out_0", (1, spec.n_mels, 1))]
    return {
        "kind": "amplitude_phase",
        "offline": graph_entry(root, root / "voc.onnx", ins, outs),
        "streaming": graph_entry(root, root / "voc_stream.onnx", ins + [TensorSpec("state_in_0", state[0].shape)],
                                 outs + [TensorSpec("state_out_0", state[0].shape)], state),
    }


def make_tiny_bundle(root: Path, spec: MelSpec | None = None) -> Path:
    spec = spec or MelSpec()
    root.mkdir(parents=True, exist_ok=True)
    data = {
        "schema_version": SCHEMA_VERSION,
        "name": "tiny-test",
        "mel": spec.to_dict(),
        "default_vocoder": "classical",
        "vocoders": {"classical": {"kind": "classical", "params": {}}, "ap": tiny_ap_graphs(root, spec)},
    }
    write_bundle_json(root, data)
    return root
