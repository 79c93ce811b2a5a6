"""The live chain: controls and latent walk, messages from the player, sources, the producer pipeline and the Synth."""
