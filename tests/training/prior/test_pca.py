"""The prior's fixed mel PCA: fitting, decode/project, the PCA generator and critic, the batch-std feature."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from melsynth.training.nn.conv import run_chunks
from melsynth.training.prior.config import ConfigError, DiscriminatorConfig, GeneratorConfig
from melsynth.training.prior.discriminator import Discriminator, minibatch_std
from melsynth.training.prior.model import Generator
from melsynth.training.prior.pca import MelPCA, fit_frame_pca
from tests.prior_fixtures import make_synthetic_corpus, one_thread, tiny_generator_config, tiny_prior_config

_one_thread = pytest.fixture(scope="module", autouse=True)(one_thread)


def low_rank_frames(n=2000, n_mels=256, rank=3, seed=0):
    rng = np.random.default_rng(seed)
    directions = np.linalg.qr(rng.standard_normal((n_mels, rank)))[0].T       # (rank, n_mels) orthonormal
    scales = np.array([3.0, 1.0, 0.25])[:rank]
    coefficients = rng.standard_normal((n, rank)) * scales
    mean = rng.uniform(-0.5, 0.0, n_mels)
    return mean + coefficients @ directions, directions, scales


def test_fit_recovers_a_low_rank_subspace():
    frames, directions, scales = low_rank_frames()
    mean, basis, scale = fit_frame_pca(frames, 3)
    assert basis.shape == (3, 256) and np.allclose(basis @ basis.T, np.eye(3), atol=1e-5)
    # the same subspace, components in order of variance, with their standard deviations
    assert np.allclose(np.abs(basis @ directions.T), np.eye(3), atol=0.02)   # finite-sample mixing only
    assert np.allclose(np.linalg.norm(basis @ directions.T, axis=0), 1.0, atol=1e-5)   # same span
    assert np.allclose(scale, scales, rtol=0.08)
    assert np.allclose(mean, frames.mean(0), atol=1e-5)


def test_project_then_decode_is_identity_on_the_subspace():
    frames, _, _ = low_rank_frames()
    pca = MelPCA(256, 3).set(*fit_frame_pca(frames, 3))
    mel = torch.from_numpy(frames[:40].T[None].astype(np.float32))           # (1, 256, 40)
    coefficients = pca.project(mel)
    assert coefficients.shape == (1, 3, 40)
    assert float((pca.decode(coefficients) - mel).abs().max()) < 1e-4
    # whitened: unit variance over many frames
    all_coefficients = pca.project(torch.from_numpy(frames.T[None].astype(np.float32)))[0]
    assert np.allclose(all_coefficients.std(dim=1).numpy(), 1.0, atol=0.05)


def test_fit_rejects_too_few_frames():
    with pytest.raises(ValueError, match="k=8"):
        fit_frame_pca(np.zeros((5, 256)), 8)


def test_pca_components_must_fit_the_mel():
    with pytest.raises(ConfigError, match="pca_components"):
        GeneratorConfig(pca_components=300)


def pca_generator(k=6):
    cfg = GeneratorConfig(**{**tiny_generator_config().to_dict(), "pca_components": k,
                             "upsample": (2, 2), "channels": (16, 16, 12), "dilations": ((1,), (1, 2), (1, 3))})
    torch.manual_seed(0)
    g = Generator(cfg).eval()
    frames, _, _ = low_rank_frames(rank=3)
    rng = np.random.default_rng(1)
    frames = np.clip(frames + 0.05 * rng.standard_normal(frames.shape), -1, 1)
    g.pca.set(*fit_frame_pca(frames, k))
    return g


def test_pca_generator_streams_like_offline_and_stays_in_range():
    g = pca_generator()
    z = torch.randn(2, g.latent_size, 7) * 3
    with torch.no_grad():
        offline = g(z)
        streamed = torch.cat(run_chunks(g, z, [1, 3, 2, 1]), dim=2)
    assert offline.shape == (2, 256, 7 * g.latent_frames)
    assert float(offline.abs().max()) <= 1.0
    assert float((offline - streamed).abs().max()) < 1e-5


def test_pca_generator_output_lies_in_its_subspace():
    g = pca_generator()
    with torch.no_grad():
        mel = g(torch.randn(1, g.latent_size, 3) * 0.1)
        inside = mel.abs().max() < 1.0      # no clipping, so the decode is exact
        rebuilt = g.pca.decode(g.pca.project(mel))
    assert bool(inside)
    assert float((rebuilt - mel).abs().max()) < 1e-4


def test_pca_critic_ignores_what_the_basis_cannot_express():
    frames, _, _ = low_rank_frames(rank=3)
    critic = Discriminator(256, DiscriminatorConfig(channels=(8, 8), kernel_size=3, pca_input=True),
                           pca_components=3).eval()
    critic.pca.set(*fit_frame_pca(frames, 3))
    mel = torch.from_numpy(frames[:32].T[None].astype(np.float32))
    basis = critic.pca.basis.numpy()
    off = np.random.default_rng(2).standard_normal(256)
    off -= basis.T @ (basis @ off)                                            # orthogonal to the basis
    with torch.no_grad():
        a = critic(mel)[0][0]
        b = critic(mel + torch.from_numpy(off.astype(np.float32))[None, :, None])[0][0]
        c = critic(mel + torch.from_numpy(basis[0])[None, :, None])[0][0]
    assert float((a - b).abs().max()) < 1e-4
    assert float((a - c).abs().max()) > 1e-4


def test_pca_critic_needs_components():
    with pytest.raises(ValueError, match="pca_components"):
        Discriminator(256, DiscriminatorConfig(pca_input=True), pca_components=0)


def test_minibatch_std_keeps_real_and_fake_groups_apart():
    torch.manual_seed(0)
    real, fake = torch.randn(8, 5, 6), torch.randn(8, 5, 6)
    a = minibatch_std(torch.cat([real, fake]))
    b = minibatch_std(torch.cat([real, fake * 10]))
    assert a.shape == (16, 6, 6)
    assert torch.equal(a[:8], b[:8])                 # the real half does not hear the fake half
    assert float((a[8:, -1] - b[8:, -1]).abs().min()) > 0.1
    # the feature is the spread across the group: identical samples give ~0
    same = minibatch_std(torch.zeros(4, 3, 2) + 1.0)
    assert float(same[:, -1].max()) < 1e-3


def test_task_fits_one_basis_for_generator_and_critic(tmp_path):
    from melsynth.training.prior.train import PriorTask

    corpus = make_synthetic_corpus(tmp_path / "corpus")
    g = tiny_generator_config()
    cfg = tiny_prior_config(generator=GeneratorConfig(**{**g.to_dict(), "pca_components": 5}),
                            discriminator=DiscriminatorConfig(channels=(8, 8), kernel_size=3, pca_input=True,
                                                              minibatch_std=True))
    task = PriorTask(cfg, corpus)
    module, critic = task.build_generator(), task.build_discriminator()
    for pca in (module.net.pca, module.ema.pca, critic.pca):
        assert torch.equal(pca.basis, module.net.pca.basis)
    assert float(module.net.pca.scale.min()) > 0 and float(module.net.pca.basis.abs().max()) > 0
    with torch.no_grad():
        out = module(torch.randn(2, g.latent_size, task.segment_steps))
    logits, _ = critic(task.random_windows(out, warmup=True))
    assert logits[0].shape[0] == 2


def test_a_saturated_pca_generator_still_gets_gradients():
    """Straight-through clip: out-of-range bins pass a gradient back (a plain clamp stalls the run)."""
    g = pca_generator().train()
    with torch.no_grad():
        g.pca.mean.fill_(5.0)                     # every bin far above +1
    z = torch.randn(2, g.latent_size, 3)
    out = g(z)
    assert float(out.min()) == 1.0 and float(out.max()) == 1.0
    out.sum().backward()
    grads = [p.grad for p in g.output.parameters() if p.grad is not None]
    assert grads and max(float(gr.abs().max()) for gr in grads) > 0
    with torch.no_grad():                         # inference is a plain clip
        assert float(g(z).max()) == 1.0


def test_delta_critic_reads_motion():
    """With delta_input the 1-D critic sees frame differences: through that half alone, every
    static window looks the same and a moving one does not."""
    torch.manual_seed(0)
    critic = Discriminator(256, DiscriminatorConfig(channels=(8, 8), kernel_size=3, delta_input=True)).eval()
    first = critic.branches[0].layers[0]
    assert first.in_channels == 512
    with torch.no_grad():
        first.parametrizations.weight.original[:, :256].zero_()    # keep only the difference channels
        a, b = torch.rand(1, 256, 1), torch.rand(1, 256, 1)
        static_a, static_b = a.expand(1, 256, 16).contiguous(), b.expand(1, 256, 16).contiguous()
        moving = torch.cat([a.expand(1, 256, 8), b.expand(1, 256, 8)], dim=2)
        out = [critic(x)[0][0] for x in (static_a, static_b, moving)]
    assert float((out[0] - out[1]).abs().max()) < 1e-6
    assert float((out[0] - out[2]).abs().max()) > 1e-4
