"""Handlers of the engine's commands: render, play, bench, resynth, bundle info."""
