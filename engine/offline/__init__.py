"""Whole-file tools: render, audio files, metrics, vocoder evaluation, the bench, bundle maintenance."""
