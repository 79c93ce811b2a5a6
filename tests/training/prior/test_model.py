"""The prior's generator and discriminator: shapes, causality, streaming == offline, a learning step."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from melsynth.training.nn.conv import run_chunks
from melsynth.training.prior.config import ConfigError, GeneratorConfig, PriorConfig
from melsynth.training.prior.discriminator import Discriminator
from melsynth.training.prior.model import Generator
from tests.prior_fixtures import one_thread, tiny_generator_config, tiny_prior_config


_one_thread = pytest.fixture(scope="module", autouse=True)(one_thread)


@pytest.fixture(scope="module")
def generator():
    torch.manual_seed(0)
    return Generator(tiny_generator_config()).eval()


def test_output_shape_and_range(generator):
    z = torch.randn(3, 8, 5) * 4
    with torch.no_grad():
        mel = generator(z)
    assert mel.shape == (3, 256, 5 * generator.latent_frames)
    assert float(mel.abs().max()) <= 1.0


def test_default_config_is_one_latent_per_16_frames():
    cfg = GeneratorConfig()
    assert cfg.latent_frames == 16 and cfg.latent_size == 64


@pytest.mark.parametrize("chunks", [[1] * 7, [2, 1, 3, 1], [7]])
def test_streaming_equals_offline(generator, chunks):
    z = torch.randn(2, 8, 7)
    with torch.no_grad():
        offline = generator(z)
        streamed = torch.cat(run_chunks(generator, z, chunks), dim=2)
    assert float((offline - streamed).abs().max()) < 1e-5


def test_latent_change_is_causal_and_heard_at_once(generator):
    """Changing step s's latent leaves every earlier frame alone and changes the step's first frame."""
    z = torch.randn(1, 8, 6)
    z2 = z.clone()
    s, k = 3, generator.latent_frames
    z2[:, :, s] += 3.0
    with torch.no_grad():
        a, b = generator(z), generator(z2)
    diff = (a - b).abs().amax(dim=1)[0]
    assert float(diff[: s * k].max()) == 0.0
    assert float(diff[s * k]) > 1e-3


def test_bad_latent_shape_is_a_clear_error(generator):
    with pytest.raises(ValueError, match=r"z must be \(batch, 8, steps\)"):
        generator(torch.randn(1, 5, 3))


def test_config_validation():
    with pytest.raises(ConfigError, match="channels"):
        GeneratorConfig(upsample=(4, 4), channels=(8, 8))
    with pytest.raises(ConfigError, match="multiple of latent_frames"):
        PriorConfig(window_frames=100)
    cfg = tiny_prior_config()
    import json
    assert PriorConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(ConfigError, match="unknown field"):
        PriorConfig.from_dict({"window": 3})


def test_discriminator_patch_logits_and_features():
    cfg = tiny_prior_config()
    d = Discriminator(256, cfg.discriminator)
    logits, feats = d(torch.randn(2, 256, 32))
    assert len(logits) == 2 and all(l.shape[0] == 2 for l in logits)
    assert logits[0].shape[-1] == 32 // 4  # two stride-2 layers after the first
    assert len(feats) == len(cfg.discriminator.channels) + len(cfg.discriminator.freq_channels)


def test_generator_improves_against_a_fixed_critic():
    """A few generator steps against a frozen critic lower the generator's hinge loss."""
    from melsynth.training.prior.losses import generator_hinge_loss

    torch.manual_seed(1)
    cfg = tiny_prior_config()
    g = Generator(cfg.generator)
    d = Discriminator(256, cfg.discriminator).eval().requires_grad_(False)
    opt = torch.optim.Adam(g.parameters(), lr=1e-3)
    z = torch.randn(8, 8, 8)

    def loss():
        return generator_hinge_loss(d(g(z))[0])

    with torch.no_grad():
        before = float(loss())
    for _ in range(10):
        opt.zero_grad()
        l = loss()
        l.backward()
        opt.step()
    with torch.no_grad():
        after = float(loss())
    assert after < before - 1e-3, (before, after)


def test_critic_learns_to_separate_real_from_fake():
    from melsynth.training.prior.losses import critic_hinge_loss

    torch.manual_seed(2)
    cfg = tiny_prior_config()
    g = Generator(cfg.generator).eval()
    d = Discriminator(256, cfg.discriminator)
    opt = torch.optim.Adam(d.parameters(), lr=1e-3, betas=(0.5, 0.9))
    real = torch.from_numpy(np.tile(np.linspace(-1, 0.5, 256, dtype=np.float32)[None, :, None], (8, 1, 32)))
    with torch.no_grad():
        fake = g(torch.randn(8, 8, 8))
    losses = []
    for _ in range(15):
        logits, _ = d(torch.cat([real, fake]))
        l = critic_hinge_loss([x[:8] for x in logits], [x[8:] for x in logits])
        opt.zero_grad()
        l.backward()
        opt.step()
        losses.append(float(l.detach()))
    assert losses[-1] < losses[0] - 0.2, losses
