"""Signal processing on numpy arrays: mel features, STFT inversion, magnitude and phase
reconstruction, resampling, output safety."""
