import numpy as np
import pytest


@pytest.fixture(scope="session")
def real_audio():
    """A few seconds of rendered music (FluidR3 piano via the corpus renderer), 11025 Hz mono."""
    from tests.fixtures import load_fixture_audio

    return load_fixture_audio()
