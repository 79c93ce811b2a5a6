"""Named directions fitted to the knob's objective: torch properties match numpy's; the fit finds the axis."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from melsynth.engine.dsp.features import MelSpec
from melsynth.training.prior.direction_fit import FitConfig, fit_direction, torch_properties
from melsynth.training.prior.directions import PROPERTIES, NamedDirection, Protocol, verify_directions

SPEC = MelSpec()
K = 4  # frames per latent step


class ToyGenerator(nn.Module):
    """``(b, 6, steps) -> (b, 256, steps*K)`` normalised mel: level <- z0, tilt <- z1, peak <- z2, flicker <- z3."""

    latent_size, latent_frames = 6, K

    def __init__(self):
        super().__init__()
        self.gain = nn.Parameter(torch.ones(()))  # fit_direction must leave weights alone

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        zf = z.repeat_interleave(K, dim=2)
        bins = torch.arange(256, dtype=torch.float32)[None, :, None]
        level = -0.45 + 0.05 * zf[:, 0:1]
        tilt = 0.08 * zf[:, 1:2] * (bins / 256 - 0.5)
        bump = 0.45 * torch.exp(-((bins - (60 + 12 * zf[:, 2:3])) ** 2) / 18.0)
        sign = ((torch.arange(zf.shape[2]) % 2) * 2 - 1).float()[None, None]
        flicker = 0.04 * (1 + torch.tanh(zf[:, 3:4])) * sign
        return self.gain * torch.clamp(level + tilt + bump + flicker, -1, 1)


def test_torch_properties_agree_with_the_numpy_ones():
    gen = ToyGenerator()
    with torch.no_grad():
        log_mel = SPEC.denormalize(gen(torch.randn(32, 6, 6)).numpy()).astype(np.float64)
    ours = torch_properties(SPEC)
    for name in ("loudness", "brightness", "activity"):
        np.testing.assert_allclose(ours[name](torch.from_numpy(log_mel).float()).numpy(),
                                   PROPERTIES[name](log_mel, SPEC), rtol=2e-3, atol=1e-4, err_msg=name)
    # register: a smooth stand-in for an argmax, so it has to rank the windows alike
    soft = ours["register"](torch.from_numpy(log_mel).float()).numpy()
    assert np.corrcoef(soft, PROPERTIES["register"](log_mel, SPEC))[0, 1] > 0.9


@pytest.mark.parametrize("name, axis", [("loudness", 0), ("register", 2), ("activity", 3)])
def test_fit_turns_a_wrong_start_towards_the_property_axis(name, axis):
    torch.manual_seed(0)
    gen = ToyGenerator().eval()
    protocol = Protocol(latent_size=6, latent_frames=K, warmup_steps=1, measure_steps=3)
    start = np.zeros(6, np.float32)
    start[5] = 1.0            # z5 drives nothing
    start[axis] = -0.3        # and a little of the wrong sign
    v = fit_direction(gen, torch_properties(SPEC)[name], protocol, SPEC, start,
                      FitConfig(steps=60, batch=16, lr=0.1))
    assert np.linalg.norm(v) == pytest.approx(1.0, abs=1e-5)
    assert v[axis] > 0.5, v
    if name != "loudness":  # (loudness also takes tilt: lifting the bump's half of the bins is louder too)
        assert v[axis] == pytest.approx(np.max(np.abs(v))), v
    assert gen.gain.requires_grad                      # the weights are handed back trainable
    before = NamedDirection(name, start / np.linalg.norm(start), 1.0, 0.0)
    after = NamedDirection(name, v, 1.0, 0.0)

    def sample(z):
        with torch.no_grad():
            return gen(torch.from_numpy(z)).numpy()

    verify_directions(sample, protocol, [before, after], SPEC, n=200)
    assert before.verify_rate < 0.5 and after.verify_rate >= 0.9
