"""Tiny real bundles for the engine's tests: ONNX graphs with random weights (fixtures, never shipped).

``tiny_prior_bundle(root)``: a toy causal prior exported to ONNX (offline and
streaming graphs, one state tensor), two directions, the classical vocoder and
the foundation's tiny amplitude-phase vocoder (``tests.bundle_factory``). The
engine runs it through its real ``Prior``/``Vocoder`` classes. Needs torch.

Toy prior (one latent step = K frames)::

    h_s   = A z_s + B z_{s-1}                 causal over latent steps (z_{-1} = 0: the state)
    mel   = tanh(W h_s + b + ramp_k * V h_s)  frame k = 0..K-1 of step s

The streaming graph takes exactly one step per call (static shapes), so its state
output is that step's latent.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

LATENT = 8
FRAMES = 8  # latent_frames


def _toy_prior_modules(n_mels: int):
    import torch
    from torch import nn

    class ToyPrior(nn.Module):
        def __init__(self):
            super().__init__()
            g = torch.Generator().manual_seed(5)
            self.a = nn.Parameter(torch.randn(16, LATENT, generator=g) / LATENT ** 0.5)
            self.b = nn.Parameter(torch.randn(16, LATENT, generator=g) / LATENT ** 0.5)
            self.w = nn.Parameter(torch.randn(n_mels, 16, generator=g) / 4)
            self.v = nn.Parameter(torch.randn(n_mels, 16, generator=g) / 8)
            self.bias = nn.Parameter(torch.linspace(0.2, -0.8, n_mels))
            self.register_buffer("ramp", torch.linspace(-1, 1, FRAMES))

        def frames(self, z, z_prev):
            """``z, z_prev (1, LATENT, S) -> (1, n_mels, S * FRAMES)``."""
            h = torch.einsum("cl,bls->bcs", self.a, z) + torch.einsum("cl,bls->bcs", self.b, z_prev)
            base = torch.einsum("mc,bcs->bms", self.w, h) + self.bias[None, :, None]
            slope = torch.einsum("mc,bcs->bms", self.v, h)
            out = base.unsqueeze(-1) + slope.unsqueeze(-1) * self.ramp  # (1, M, S, K)
            return torch.tanh(out.reshape(out.shape[0], out.shape[1], -1))

        def forward(self, z):
            z_prev = torch.cat([torch.zeros_like(z[:, :, :1]), z[:, :, :-1]], dim=2)
            return self.frames(z, z_prev)

    class ToyPriorStream(nn.Module):
        def __init__(self, prior):
            super().__init__()
            self.prior = prior

        def forward(self, z, state_in_0):
            return self.prior.frames(z, state_in_0), z

    return ToyPrior, ToyPriorStream


def tiny_prior_bundle(root: Path, name: str = "tiny-engine") -> Path:
    import torch

    from melsynth.engine.dsp.features import MelSpec
    from melsynth.engine.runtime.bundle import (SCHEMA_VERSION, StateSpec, TensorSpec, graph_entry, load_bundle,
                                                write_bundle_json)
    from melsynth.training.onnx_export import export_onnx
    from tests.bundle_factory import tiny_ap_graphs

    root.mkdir(parents=True, exist_ok=True)
    spec = MelSpec()
    ToyPrior, ToyPriorStream = _toy_prior_modules(spec.n_mels)
    prior = ToyPrior().eval()
    export_onnx(prior, [torch.randn(1, LATENT, 3)], root / "prior.onnx", ["z"], ["mel"],
                {"z": {2: "steps"}, "mel": {2: "frames"}})
    export_onnx(ToyPriorStream(prior), [torch.randn(1, LATENT, 1), torch.randn(1, LATENT, 1)],
                root / "prior_stream.onnx", ["z", "state_in_0"], ["mel", "state_out_0"])
    state = StateSpec("state_in_0", "state_out_0", (1, LATENT, 1))
    rng = np.random.default_rng(1)
    directions = []
    for dname, kind in (("loudness", "named"), ("pc1", "pca")):
        v = rng.standard_normal(LATENT)
        directions.append({"name": dname, "kind": kind, "vector": (v / np.linalg.norm(v)).tolist(), "sigma": 1.0})
    data = {
        "schema_version": SCHEMA_VERSION, "name": name, "mel": spec.to_dict(), "default_vocoder": "classical",
        "vocoders": {"classical": {"kind": "classical", "params": {}}, "ap": tiny_ap_graphs(root, spec)},
        "prior": {
            "offline": graph_entry(root, root / "prior.onnx", [TensorSpec("z", (1, LATENT, "steps"))],
                                   [TensorSpec("mel", (1, spec.n_mels, "frames"))]),
            "streaming": graph_entry(root, root / "prior_stream.onnx",
                                     [TensorSpec("z", (1, LATENT, 1)), TensorSpec("state_in_0", state.shape)],
                                     [TensorSpec("mel", (1, spec.n_mels, FRAMES)),
                                      TensorSpec("state_out_0", state.shape)],
                                     [state], frames_per_step=FRAMES),
            "latent_size": LATENT, "latent_frames": FRAMES, "directions": directions,
        },
    }
    write_bundle_json(root, data)
    load_bundle(root)  # checks both graphs against bundle.json
    return root


_SHARED: dict[str, Path] = {}


def shared_tiny_prior_bundle() -> Path:
    """One ``tiny_prior_bundle`` per test process (read-only for its users: exporting costs seconds)."""
    if "tiny" not in _SHARED:
        import atexit
        import shutil
        import tempfile

        folder = Path(tempfile.mkdtemp(prefix="melsynth-tiny-engine-"))
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        _SHARED["tiny"] = tiny_prior_bundle(folder / "tiny-engine")
    return _SHARED["tiny"]
