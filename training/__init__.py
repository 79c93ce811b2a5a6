"""melsynth training: torch-only corpus, networks, losses, loops, export, evaluation."""
