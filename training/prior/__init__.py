"""The prior: an unconditional GAN from latent sequences to mel frames, and its knobs."""
