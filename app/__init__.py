"""melsynth app: Qt GUI, MIDI and the command line (no torch)."""
