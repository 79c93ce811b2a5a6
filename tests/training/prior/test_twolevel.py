"""The two-level prior: autoencoder run -> latent GAN run -> one streaming generator in a bundle."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from tests.prior_fixtures import make_synthetic_corpus, one_thread, tiny_prior_config
from melsynth.training.gan import RunLimits, TrainError, train
from melsynth.training.nn.conv import run_chunks
from melsynth.training.prior.config import ConfigError, GeneratorConfig
from melsynth.training.prior.model import Generator
from melsynth.training.prior.twolevel import (AutoencoderTask, LatentCritic, LatentGANTask, TwoLevelConfig, encode_mel,
                                              encode_split, encoder_fingerprint, latent_prior_config)

_one_thread = pytest.fixture(scope="module", autouse=True)(one_thread)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_synthetic_corpus(tmp_path_factory.mktemp("twolevel") / "corpus")


def two_level_generator_config(slow_channels: int = 0, phrase_size: int = 0) -> GeneratorConfig:
    return dataclasses.replace(tiny_prior_config().generator, latent_size=6, code_size=10, front_channels=12,
                               front_dilations=(1, 2), front_slow_channels=slow_channels, front_slow_steps=5,
                               phrase_size=phrase_size)


def _randomise_slow_path(g: Generator) -> None:
    with torch.no_grad():
        for p in g.front.slow.out.parameters():
            p.normal_()


def _randomise_phrase_path(g: Generator) -> None:
    with torch.no_grad():
        for p in g.front.phrase.out.parameters():
            p.normal_()


@pytest.mark.parametrize("slow_channels, phrase_size", [(0, 0), (3, 0), (0, 2)])
def test_front_streams_equal_offline_and_decoder_config_drops_it(slow_channels, phrase_size):
    torch.manual_seed(0)
    g = Generator(two_level_generator_config(slow_channels, phrase_size)).eval()
    if slow_channels:
        _randomise_slow_path(g)
    if phrase_size:
        _randomise_phrase_path(g)
    z = torch.randn(1, 6, 12)
    with torch.no_grad():
        offline = g(z)
        chunks = torch.cat(run_chunks(g, z, [1, 3, 2, 3, 1, 2]), dim=2)
    torch.testing.assert_close(chunks, offline, atol=1e-5, rtol=0)
    dec = g.config.decoder_config()
    assert (dec.latent_size, dec.code_size, dec.front_slow_channels, dec.phrase_size) == (10, 0, 0, 0)
    # the composite's decoder parameters are exactly a front-less generator's
    plain = {k for k in Generator(dec).state_dict()}
    assert plain == {k for k in g.state_dict() if not k.startswith("front.")}


def test_front_is_causal():
    torch.manual_seed(1)
    g = Generator(two_level_generator_config()).eval()
    z = torch.randn(1, 6, 8)
    z2 = z.clone()
    z2[:, :, 5] += 3.0
    with torch.no_grad():
        a, b = g(z), g(z2)
    lf = g.latent_frames
    torch.testing.assert_close(a[:, :, :5 * lf], b[:, :, :5 * lf])
    assert float((a[:, :, 5 * lf:6 * lf] - b[:, :, 5 * lf:6 * lf]).abs().max()) > 1e-4


def test_slow_path_starts_silent_and_remembers_for_its_steps():
    from melsynth.training.prior.model import SlowLatent

    torch.manual_seed(2)
    plain = Generator(two_level_generator_config(0)).eval()
    slow = Generator(two_level_generator_config(3)).eval()
    missing, unexpected = slow.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and all(k.startswith("front.slow.") for k in missing) and missing
    z = torch.randn(2, 6, 10)
    with torch.no_grad():
        torch.testing.assert_close(slow(z), plain(z))      # a warm start keeps what the front learned
    path = SlowLatent(latent_size=8, channels=4, steps=12, out_channels=5)
    with torch.no_grad():
        averages = path.average(torch.randn(64, 8, 400))[:, :, 11:]
        impulse = torch.zeros(1, 8, 20)
        impulse[:, :, 2] = 1.0
        response = path.average(impulse)[0].abs().sum(0)
    # unit variance for N(0, I) noise, each channel a different time scale
    assert torch.allclose(averages.var(dim=(0, 2)), torch.ones(4), atol=0.12)
    assert bool((response[2:14] > 0).all()) and float(response[14:].abs().max()) == 0.0 and float(response[:2].max()) == 0.0
    taps = path.average.conv.weight.detach()
    memory = [float(taps[c].norm(dim=0)[:3].sum() / taps[c].norm(dim=0).sum()) for c in range(4)]
    assert memory == sorted(memory) and memory[0] < memory[-1]   # longer time constants weigh the past more


def test_config_validation():
    with pytest.raises(ConfigError, match="code_size"):
        GeneratorConfig(code_size=-1)
    with pytest.raises(ConfigError, match="front_slow_channels"):
        GeneratorConfig(front_slow_channels=4)               # no front to feed
    with pytest.raises(ConfigError, match="front_slow_steps"):
        GeneratorConfig(code_size=8, front_slow_channels=4, front_slow_steps=1)
    with pytest.raises(ConfigError, match="window_steps"):
        TwoLevelConfig(window_steps=1)
    with pytest.raises(ConfigError, match="moment_steps"):
        TwoLevelConfig(window_steps=8, moment_weight=1.0, moment_steps=9)
    with pytest.raises(ConfigError, match="moment_weight"):
        TwoLevelConfig(moment_weight=-1.0)
    with pytest.raises(ConfigError, match="mel_moment_weight must be >= 0, got -0.1"):
        TwoLevelConfig(mel_moment_weight=-0.1)
    with pytest.raises(ConfigError, match="moment_steps"):
        TwoLevelConfig(window_steps=8, mel_moment_weight=1.0, moment_steps=9)   # the mel windows too
    with pytest.raises(ConfigError, match="moment_axes must be one of code, mel, got 'bands'"):
        TwoLevelConfig(moment_axes="bands")
    with pytest.raises(ConfigError, match="window_mean_weight"):
        TwoLevelConfig(window_mean_weight=-0.5)
    with pytest.raises(ConfigError, match="window_std_weight"):
        TwoLevelConfig(window_std_weight=-1.0)
    with pytest.raises(ConfigError, match="unknown"):
        TwoLevelConfig.from_dict({"nope": 1})


def test_encode_mel_in_chunks_equals_one_pass():
    from melsynth.training.prior.encoder import Encoder

    torch.manual_seed(0)
    enc = Encoder(16, 5, 4, channels=8).eval()
    mel = np.random.default_rng(0).standard_normal((16, 4 * 600)).astype(np.float32)
    chunked = encode_mel(enc, mel, 4)
    with torch.no_grad():
        whole = enc(torch.from_numpy(mel)[None])[0][0].numpy()
    assert chunked.shape == (5, 600)
    # away from chunk edges the receptive field is covered by the overlap
    np.testing.assert_allclose(chunked, whole, atol=1e-4)


def test_latent_critic_logits_and_standardisation():
    critic = LatentCritic(10, 16, (1, 2))
    critic.set_statistics(np.full(10, 5.0), np.full(10, 2.0))
    codes = torch.randn(4, 10, 12) * 2 + 5
    logits, features = critic(codes)
    assert [tuple(l.shape) for l in logits] == [(4, 1, 12), (4, 1, 12)]
    assert len(features) == 5


def _autoencoder_run(corpus, tmp_path, steps):
    prior = tiny_prior_config(generator=dataclasses.replace(tiny_prior_config().generator, latent_size=10))
    task = AutoencoderTask(prior, TwoLevelConfig(), corpus)
    run = tmp_path / "ae"
    from melsynth.training.prior.train import default_trainer_config

    cfg = default_trainer_config(
        batch_size=4, lr_g=2e-3, betas=(0.9, 0.99), warmup_steps=0, validate_minutes=60)
    train(task, cfg, run, RunLimits(max_steps=steps, progress=False))
    return run, prior


def test_autoencoder_learns_to_reconstruct(corpus, tmp_path):
    run, prior = _autoencoder_run(corpus, tmp_path, 1)
    task = AutoencoderTask(prior, TwoLevelConfig(), corpus)
    from melsynth.training.prior.twolevel import load_autoencoder

    before, _ = load_autoencoder(run)
    first = task.validate(before, "cpu").metrics["recon_l1"]
    run2, _ = _autoencoder_run(corpus, tmp_path / "more", 60)
    after, _ = load_autoencoder(run2)
    metrics = task.validate(after, "cpu").metrics
    assert metrics["recon_l1"] < 0.8 * first
    # train windows reconstructed too (the ceiling of a prior on these codes), scored like the test ones
    assert set(metrics) >= {"recon_train_fd_ratio", "recon_train_ndb", "recon_train_l1", "recon_fd_ratio"}
    assert metrics["recon_train_l1"] < 0.8 * first and metrics["recon_train_fd_ratio"] > 0
    assert task.best_metric in metrics


def test_window_terms_are_the_l1_of_band_means_and_spreads_after_the_first_step(corpus):
    from melsynth.training.prior.train import PriorModule

    prior = tiny_prior_config(generator=dataclasses.replace(tiny_prior_config().generator, latent_size=10))
    torch.manual_seed(0)
    module = PriorModule(prior)
    lf = prior.generator.latent_frames
    batch = torch.rand(3, prior.generator.n_mels, 4 * lf) * 2 - 1
    torch.manual_seed(1)   # the posterior sample: the same in every call
    plain = AutoencoderTask(prior, TwoLevelConfig(), corpus).generator_loss(module, None, batch, False)
    torch.manual_seed(1)
    weighted = AutoencoderTask(prior, TwoLevelConfig(window_mean_weight=2.0, window_std_weight=3.0),
                               corpus).generator_loss(module, None, batch, False)
    assert "mean_l1" not in plain.logs and "std_l1" not in plain.logs
    with torch.no_grad():
        torch.manual_seed(1)
        from melsynth.training.prior.encoder import reparameterise

        mean, log_var = module.encoder(batch)
        recon = module(reparameterise(mean, log_var))
        want_mean = float((recon[:, :, lf:].mean(2) - batch[:, :, lf:].mean(2)).abs().mean())
        want_std = float((recon[:, :, lf:].std(2) - batch[:, :, lf:].std(2)).abs().mean())
    assert weighted.logs["mean_l1"] == pytest.approx(want_mean, rel=1e-5) and want_mean > 0
    assert weighted.logs["std_l1"] == pytest.approx(want_std, rel=1e-5) and want_std > 0
    assert float(weighted.loss) == pytest.approx(float(plain.loss) + 2.0 * want_mean + 3.0 * want_std, rel=1e-5)


def test_latent_gan_trains_the_front_only_and_exports_one_streaming_prior(corpus, tmp_path, monkeypatch):
    from melsynth.cli.main import main
    from melsynth.engine.runtime.bundle import load_bundle
    from melsynth.engine.runtime.prior import Prior

    ae_run, ae_prior = _autoencoder_run(corpus, tmp_path, 3)
    prior = latent_prior_config(ae_prior.to_dict(), latent_size=6, front_channels=12, front_dilations=(1, 2))
    prior = dataclasses.replace(prior, generator=dataclasses.replace(prior.generator, front_slow_channels=3,
                                                                     front_slow_steps=4))
    config = tmp_path / "latent.json"
    config.write_text(json.dumps({"prior": prior.to_dict(),
                                  "trainer": {"batch_size": 4, "warmup_steps": 0, "validate_minutes": 60},
                                  "twolevel": {"autoencoder": str(ae_run), "window_steps": 6, "warmup_steps": 2,
                                               "critic_channels": 16, "critic_dilations": [1, 2],
                                               "moment_weight": 1.0, "moment_steps": 3, "moment_components": 4,
                                               "moment_axes": "mel", "mel_moment_weight": 1.0}}))
    run = tmp_path / "latent"
    assert main(["train", "prior", "--corpus", str(corpus), "--run", str(run), "--config", str(config),
                 "--steps", "3", "--no-progress"]) == 0
    assert (run / "train_codes.npz").is_file()
    state = torch.load(run / "checkpoint.pt", weights_only=False)
    from melsynth.training.prior.twolevel import load_autoencoder

    ae, _ = load_autoencoder(ae_run)
    decoder = ae.ema.state_dict()
    # the decoder stayed frozen in the trained net; the front moved away from its start
    for k, v in decoder.items():
        torch.testing.assert_close(state["generator"]["net." + k], v)
    bundle = tmp_path / "bundle"
    assert main(["export", "prior", str(run), "--bundle", str(bundle), "--pca", "2", "--pca-latents", "500",
                 "--regress", "100", "--verify", "20", "--fit-steps", "1"]) == 0
    b = load_bundle(bundle)
    assert b.prior.latent_size == 6
    mel = Prior(b).offline(np.random.default_rng(0).standard_normal((5, 6)).astype(np.float32))
    assert mel.shape[-1] == 5 * b.prior.latent_frames and np.isfinite(mel).all()
    from melsynth.training.prior.from_bundle import generator_from_bundle

    assert generator_from_bundle(bundle).front is not None   # rebuilt with its front, parity checked
    # the front with another decoder of the same shape (an adversarial fine-tune's)
    ae2, _ = _autoencoder_run(corpus, tmp_path / "second", 2)
    bundle2 = tmp_path / "bundle2"
    monkeypatch.chdir(tmp_path)     # the record names runs relative to the working folder
    assert main(["export", "prior", "latent", "--decoder", str(ae2), "--bundle", str(bundle2),
                 "--no-directions"]) == 0
    from melsynth.training.onnx_export import remove_weight_norm
    from melsynth.training.prior.twolevel import load_autoencoder as _load

    rebuilt = generator_from_bundle(bundle2).state_dict()
    for k, v in remove_weight_norm(_load(ae2)[0].ema).state_dict().items():
        torch.testing.assert_close(rebuilt[k], v, atol=1e-5, rtol=0)
    record = json.loads((bundle2 / "bundle.json").read_text())["prior"]["training"]
    assert (record["run"], record["autoencoder_run"], record["decoder_run"]) == ("latent", "ae", "second/ae")
    assert record["checkpoint"].startswith("latent/")
    curves = {"latent_gan": record["learning_curve"], "autoencoder": record["autoencoder_learning_curve"],
              "decoder_gan": record["decoder_learning_curve"]}
    assert set(record["cpu_hours"]) == set(curves)
    for level, curve in curves.items():     # each level's CPU-hours: a point of its own curve
        assert record["cpu_hours"][level] in curve["cpu_hours"]


def test_the_codes_cache_belongs_to_the_encoder_that_made_it(corpus, tmp_path, monkeypatch):
    import melsynth.training.prior.twolevel as twolevel
    from melsynth.training.prior.data import load_split
    from melsynth.training.prior.twolevel import load_autoencoder

    ae_run, ae_prior = _autoencoder_run(corpus, tmp_path, 1)
    ae2, _ = _autoencoder_run(corpus, tmp_path / "second", 2)
    prior = latent_prior_config(ae_prior.to_dict(), latent_size=6, front_channels=12, front_dilations=(1,))
    cache = tmp_path / "codes.npz"

    def task(ae):
        return LatentGANTask(prior, TwoLevelConfig(autoencoder=str(ae)), corpus, codes_cache=cache)

    first = task(ae_run).codes()
    with monkeypatch.context() as m:              # the same encoder reads its cache: nothing is encoded
        m.setattr(twolevel, "encode_split", lambda *a, **k: pytest.fail("encoded again"))
        again = task(ae_run).codes()
    assert len(again) == len(first) and all(np.array_equal(x, y) for x, y in zip(first, again))
    other = task(ae2).codes()                     # another encoder: its own codes, and the cache becomes its
    encoder = load_autoencoder(ae2)[0].encoder
    want = encode_split(encoder, load_split(corpus, "train"), twolevel.MelSpec(),
                        prior.generator.latent_frames, progress=False)
    assert all(np.allclose(x, y, atol=1e-6) for x, y in zip(other, want))
    assert not all(np.allclose(x, y) for x, y in zip(other, first))
    with np.load(cache) as z:
        assert bytes(z["encoder"]).decode() == encoder_fingerprint(encoder)
    unnamed = {f"f{i}": c for i, c in enumerate(first)}   # a cache that names no encoder is not trusted
    np.savez(cache, **unnamed)
    assert all(np.allclose(x, y, atol=1e-6) for x, y in zip(task(ae2).codes(), want))


def test_latent_gan_refuses_a_decoder_of_another_shape(corpus, tmp_path):
    ae_run, ae_prior = _autoencoder_run(corpus, tmp_path, 1)
    prior = latent_prior_config(ae_prior.to_dict(), latent_size=6, front_channels=12, front_dilations=(1,))
    other = dataclasses.replace(prior, generator=dataclasses.replace(prior.generator, channels=(8, 8, 8)))
    task = LatentGANTask(other, TwoLevelConfig(autoencoder=str(ae_run)), corpus)
    with pytest.raises(TrainError, match="differs"):
        task.build_generator()
    with pytest.raises(ConfigError, match="front"):
        LatentGANTask(tiny_prior_config(), TwoLevelConfig(autoencoder=str(ae_run)), corpus)


def test_phrase_latent_starts_silent_and_then_steers_the_front_causally():
    """Zero-initialised, the phrase inputs change nothing (a branch starts where its run was); trained
    (here: randomised), they move the output, and a change at step t leaves the steps before t alone."""
    torch.manual_seed(2)
    g = Generator(two_level_generator_config(phrase_size=2)).eval()
    z = torch.randn(1, 6, 8)
    other = z.clone()
    other[:, 4:, 5:] += 3.0
    with torch.no_grad():
        torch.testing.assert_close(g(other), g(z), atol=0, rtol=0)
        _randomise_phrase_path(g)
        a, b = g(z), g(other)
    frames = g.latent_frames
    torch.testing.assert_close(a[:, :, :5 * frames], b[:, :, :5 * frames], atol=1e-6, rtol=0)
    assert float((a[:, :, 5 * frames:] - b[:, :, 5 * frames:]).abs().mean()) > 1e-3
    with pytest.raises(ConfigError, match="phrase_size"):
        dataclasses.replace(two_level_generator_config(), phrase_size=6)
    with pytest.raises(ConfigError, match="phrase_size"):
        dataclasses.replace(tiny_prior_config().generator, phrase_size=1)   # no front


def test_walk_noise_holds_the_phrase_part_for_the_sequence():
    from melsynth.training.prior.twolevel import walk_noise

    torch.manual_seed(0)
    z = walk_noise(2000, 8, 10, 0.5, "cpu", phrase_size=3)
    phrase, fast = z[:, 5:], z[:, :5]
    assert torch.equal(phrase, phrase[:, :, :1].expand_as(phrase))
    assert abs(float(phrase[:, :, 0].std()) - 1.0) < 0.05 and abs(float(phrase.mean())) < 0.05
    assert float((fast[:, :, 1:] - fast[:, :, :-1]).abs().mean()) > 0.3


def test_walk_noise_is_unit_normal_per_step_and_correlated_in_time():
    from melsynth.training.prior.twolevel import walk_noise

    torch.manual_seed(0)
    z = walk_noise(4000, 8, 12, 0.5, "cpu")
    walked, iid = z[:2000], z[2000:]
    for part in (walked, iid):
        assert abs(float(part.std()) - 1.0) < 0.03 and abs(float(part.mean())) < 0.03
    lag1 = lambda x: float((x[:, :, 1:] * x[:, :, :-1]).mean())
    assert lag1(walked) > 0.3 and abs(lag1(iid)) < 0.03


def test_walk_noise_per_batch_draws_one_kind_per_batch():
    """Per batch, each batch is all walks (correlated in time) or all i.i.d., in the asked share;
    per sequence (the default), every batch holds both kinds."""
    from melsynth.training.prior.twolevel import walk_noise

    lag1 = lambda x: float((x[:, :, 1:] * x[:, :, :-1]).mean())
    torch.manual_seed(0)
    per_batch = [lag1(walk_noise(64, 8, 12, 0.25, "cpu", per_batch=True)) for _ in range(200)]
    assert all(c < 0.1 or c > 0.25 for c in per_batch)
    assert 0.15 < np.mean([c > 0.25 for c in per_batch]) < 0.35
    mixed = [lag1(walk_noise(64, 8, 12, 0.25, "cpu")) for _ in range(20)]
    assert all(0.04 < c < 0.25 for c in mixed)


def test_adversarial_decoder_fine_tune_keeps_the_encoder(corpus, tmp_path):
    from melsynth.training.gan import with_generator_init
    from melsynth.training.prior.train import default_trainer_config
    from melsynth.training.prior.twolevel import load_autoencoder

    ae_run, prior = _autoencoder_run(corpus, tmp_path, 2)
    task = with_generator_init(AutoencoderTask(prior, TwoLevelConfig(adversarial=0.5, freeze_encoder=True), corpus),
                               ae_run / "checkpoint.pt")
    run = tmp_path / "gan"
    train(task, default_trainer_config(batch_size=4, warmup_steps=0, validate_minutes=60), run,
          RunLimits(max_steps=3, progress=False))
    before, _ = load_autoencoder(ae_run / "checkpoint.pt")
    after = torch.load(run / "checkpoint.pt", weights_only=False)
    assert after["discriminator"] is not None
    for k, v in before.encoder.state_dict().items():
        torch.testing.assert_close(after["generator"]["encoder." + k], v)
    moved = [float((after["generator"]["net." + k] - v).abs().max()) for k, v in before.net.state_dict().items()]
    assert max(moved) > 0


def test_window_moment_loss_is_least_at_the_real_moments_and_pushes_variety_up():
    from melsynth.training.prior.losses import window_means, window_moment_loss

    torch.manual_seed(3)
    # real: each sequence holds a level for its whole 8-step window (music keeps its loudness)
    level = torch.randn(512, 4, 1) * torch.tensor([2.0, 1.0, 0.5, 0.1]).reshape(1, 4, 1)
    real = level + 0.3 * torch.randn(512, 4, 16)
    means = window_means(real, 8)
    assert means.shape == (1024, 4)
    torch.testing.assert_close(means[1], real[0, :, 8:].mean(dim=1))
    target_mean = means.mean(0)
    variance, axes = torch.linalg.eigh(torch.cov(means.T))
    basis, target_var = axes[:, [3, 2]], variance[[3, 2]]     # the top two axes
    losses = {scale: float(window_moment_loss(real * scale, 8, target_mean, basis, target_var))
              for scale in (0.0, 0.5, 1.0, 1.5)}
    assert losses[1.0] < 0.05 < losses[0.5] < losses[0.0] and losses[1.0] < losses[1.5]
    # fresh noise every step averages the levels away; the gradient asks for more spread
    fake = torch.randn(64, 4, 16, requires_grad=True)
    window_moment_loss(fake, 8, target_mean, basis, target_var).backward()
    level_gradient = (fake.grad.mean(dim=2, keepdim=True) * window_means(fake.detach(), 16)[:, :, None]).sum()
    assert float(level_gradient) < 0   # descending it scales each sequence's level up


def test_mel_moments_hold_the_decoded_windows_to_the_real_mel_spread(corpus, tmp_path):
    """The targets are the real mel windows' band-mean moments; the loss reaches the front through
    the frozen decoder and moves nothing else."""
    import melsynth.training.prior.twolevel as twolevel_module
    from melsynth.training.prior.data import load_split
    from melsynth.training.prior.losses import window_means

    ae_run, ae_prior = _autoencoder_run(corpus, tmp_path, 1)
    prior = latent_prior_config(ae_prior.to_dict(), latent_size=6, front_channels=12, front_dilations=(1,))
    twolevel = TwoLevelConfig(autoencoder=str(ae_run), window_steps=6, warmup_steps=2, moment_steps=3,
                              moment_components=4, mel_moment_weight=1.0)
    task = LatentGANTask(prior, twolevel, corpus)
    mean, basis, var = task.mel_window_moments(windows=3000)
    frames = 3 * prior.generator.latent_frames
    real = twolevel_module.MelSpec().normalize(load_split(corpus, "train").sample_windows(3000, frames, np.random.default_rng(8)))
    means = torch.from_numpy(real.mean(axis=2))
    assert basis.shape == (256, 4) and torch.allclose(basis.T @ basis, torch.eye(4), atol=1e-4)
    torch.testing.assert_close(mean, means.mean(0), atol=0.03, rtol=0)
    torch.testing.assert_close(((means - mean) @ basis).var(0), var, rtol=0.2, atol=1e-4)
    assert bool((var[:-1] >= var[1:]).all())
    torch.manual_seed(0)
    generator, critic = task.build_generator(), task.build_discriminator()
    out = task.generator_loss(generator, critic, next(task.batches(0, 1, 0, 4)), True)
    assert out.logs["g_mel_moments"] > 0
    out.loss.backward()
    grads = {n: p.grad for n, p in generator.net.named_parameters() if p.grad is not None}
    assert grads and all(n.startswith("front.") for n in grads)
    assert any(float(g.abs().sum()) > 0 for g in grads.values())
    assert window_means(torch.zeros(2, 256, frames * 2), frames).shape == (4, 256)


def test_a_branch_continues_the_run_with_a_slow_path_a_new_decoder_and_its_state(corpus, tmp_path, capsys):
    from melsynth.cli.main import main
    from melsynth.training.prior.twolevel import load_autoencoder

    ae_run, ae_prior = _autoencoder_run(corpus, tmp_path, 2)
    ae2, _ = _autoencoder_run(corpus, tmp_path / "second", 1)
    prior = latent_prior_config(ae_prior.to_dict(), latent_size=6, front_channels=12, front_dilations=(1, 2))
    twolevel = {"autoencoder": str(ae_run), "window_steps": 6, "warmup_steps": 2, "critic_channels": 16,
                "critic_dilations": [1, 2]}
    trainer = {"batch_size": 4, "warmup_steps": 0, "validate_minutes": 60}
    config = tmp_path / "latent.json"
    config.write_text(json.dumps({"prior": prior.to_dict(), "trainer": trainer, "twolevel": twolevel}))
    old = tmp_path / "old"
    assert main(["train", "prior", "--corpus", str(corpus), "--run", str(old), "--config", str(config),
                 "--steps", "3", "--no-progress"]) == 0
    slow = dataclasses.replace(prior, generator=dataclasses.replace(prior.generator, front_slow_channels=3,
                                                                    front_slow_steps=4))
    config2 = tmp_path / "branch.json"
    config2.write_text(json.dumps({"prior": slow.to_dict(), "trainer": {**trainer, "lr_half_life_steps": 100},
                                   "twolevel": {**twolevel, "autoencoder": str(ae2), "moment_weight": 1.0,
                                                "moment_steps": 3}}))
    new = tmp_path / "new"
    # as many steps as the old run made: the branch's first checkpoint is its starting state
    assert main(["train", "prior", "--corpus", str(corpus), "--run", str(new), "--config", str(config2),
                 "--branch", str(old), "--steps", "3", "--no-progress"]) == 0
    a = torch.load(old / "checkpoint.pt", weights_only=False)
    b = torch.load(new / "checkpoint.pt", weights_only=False)
    assert b["step"] == 3 and b["cpu_seconds"] >= a["cpu_seconds"]
    assert (new / "best_generator.pt").is_file()                    # its own best, whatever the old run's was
    decoder = load_autoencoder(ae2)[0].ema.state_dict()
    for k, v in b["generator"].items():
        if ".front.slow.out." in k:
            assert float(v.abs().max()) == 0.0, k                     # new: as initialised
        elif k.startswith(("net.front.", "ema.front.")) and ".slow." not in k:
            torch.testing.assert_close(v, a["generator"][k])          # the front carries on
    for k, v in decoder.items():
        torch.testing.assert_close(b["generator"]["net." + k], v)     # the decoder of the new config
    # ae2 is another encoder: the branch encodes its own codes, and its critic standardises by them
    with np.load(new / "train_codes.npz") as z:
        assert bytes(z["encoder"]).decode() == encoder_fingerprint(load_autoencoder(ae2)[0].encoder)
        codes = np.concatenate([z[k] for k in z.files if k != "encoder"], axis=1)
    with np.load(old / "train_codes.npz") as z:                     # the old run's cache is untouched
        assert bytes(z["encoder"]).decode() == encoder_fingerprint(load_autoencoder(ae_run)[0].encoder)
    for k, v in a["discriminator"].items():
        if k in ("mean", "std"):
            want = codes.mean(axis=1) if k == "mean" else np.maximum(codes.std(axis=1), 1e-3)
            np.testing.assert_allclose(b["discriminator"][k].flatten().numpy(), want, rtol=1e-4, atol=1e-5)
            assert not torch.allclose(b["discriminator"][k], v)
        else:
            torch.testing.assert_close(b["discriminator"][k], v)
    names = b["generator_parameter_names"]
    moments = {names[i] for i in b["opt_g"]["state"]}
    assert moments and all(n.startswith("net.front.") and ".slow." not in n for n in moments)
    old_curve = (old / "learning_curve.csv").read_text()
    assert (new / "learning_curve.csv").read_text().startswith(old_curve) and old_curve.count("\n") >= 2
    assert main(["train", "prior", "--corpus", str(corpus), "--run", str(new), "--resume", "--steps", "5",
                 "--no-progress"]) == 0
    assert torch.load(new / "checkpoint.pt", weights_only=False)["step"] == 5
    capsys.readouterr()
    assert main(["train", "prior", "--corpus", str(corpus), "--run", str(tmp_path / "x"), "--config", str(config2),
                 "--branch", str(old), "--resume", "--no-progress"]) == 2
    assert "cannot be combined with --resume" in capsys.readouterr().err
    assert main(["train", "prior", "--corpus", str(corpus), "--run", str(tmp_path / "y"), "--config", str(config2),
                 "--branch", str(tmp_path / "none"), "--no-progress"]) == 2
    assert "nothing to branch from" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_a_learning_curve_keeps_a_column_that_only_later_rows_have(tmp_path):
    from melsynth.training.prior.cli import run_learning_curve

    (tmp_path / "learning_curve.csv").write_text(
        "step,cpu_hours,recon_fd_ratio,recon_train_fd_ratio\n10,0.1,1.5,\n20,0.2,1.25,1.75\n")
    curve = run_learning_curve(tmp_path, columns=("step", "cpu_hours", "recon_fd_ratio", "recon_train_fd_ratio",
                                                  "absent"))
    assert curve == {"step": [10, 20], "cpu_hours": [0.1, 0.2], "recon_fd_ratio": [1.5, 1.25],
                     "recon_train_fd_ratio": [None, 1.75]}
    assert run_learning_curve(tmp_path / "none") == {}
