"""Neural vocoder training: config, the GAN task, export to a bundle, CLI verbs."""
