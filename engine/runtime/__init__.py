"""Model bundles and the models they hold: the bundle.json contract, ONNX sessions, the prior and the vocoders."""
