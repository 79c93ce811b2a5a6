import pytest

from tests.prior_fixtures import one_thread


@pytest.fixture
def one_torch_thread():
    """One intra-op torch thread: on a shared 2-core machine more threads spin and run 10x slower."""
    yield from one_thread()
