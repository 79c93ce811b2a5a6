"""Qt widgets of the synth window: knobs, paint canvas, spectrogram and meters, status panel, transport bar."""
