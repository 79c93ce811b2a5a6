"""melsynth runtime: numpy + onnxruntime only (no torch, no Qt)."""
