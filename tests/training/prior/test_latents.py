"""The prior's latent distribution: fresh inputs every step, a phrase part held per sequence."""
import numpy as np
import torch

from melsynth.training.prior.latents import held_sample_fn, hold_phrase


def test_hold_phrase_holds_the_last_inputs_at_their_first_step_for_numpy_and_torch():
    z = np.random.default_rng(0).standard_normal((3, 5, 4)).astype(np.float32)
    before = z.copy()
    out = hold_phrase(z, 2)
    assert out is z
    np.testing.assert_array_equal(z[:, :3], before[:, :3])
    np.testing.assert_array_equal(z[:, 3:], np.repeat(before[:, 3:, :1], 4, axis=2))
    t = torch.from_numpy(before.copy())
    np.testing.assert_array_equal(hold_phrase(t, 2).numpy(), z)
    np.testing.assert_array_equal(hold_phrase(before.copy(), 0), before)


def test_held_sample_fn_leaves_the_caller_noise_alone():
    seen = []
    sample = held_sample_fn(lambda z: seen.append(z) or z[:, :1], 1)
    z = np.random.default_rng(1).standard_normal((2, 3, 5)).astype(np.float32)
    before = z.copy()
    sample(z)
    np.testing.assert_array_equal(z, before)
    assert np.all(seen[0][:, 2] == seen[0][:, 2, :1]) and not np.all(before[:, 2] == before[:, 2, :1])
    np.testing.assert_array_equal(seen[0][:, :2], before[:, :2])
    plain = lambda z: z
    assert held_sample_fn(plain, 0) is plain


def test_direction_protocol_draws_the_prior_own_distribution():
    from melsynth.training.prior.directions import Protocol

    z = Protocol(latent_size=6, latent_frames=4, phrase_size=2).latents(50, np.random.default_rng(0))
    assert np.all(z[:, 4:] == z[:, 4:, :1])
    assert np.all(np.abs(np.diff(z[:, :4], axis=2)) > 0)
