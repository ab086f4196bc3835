import pytest


def _cuda_ok():
    try:
        from rinit_fast import _backend
        return _backend.cuda_available()
    except Exception:
        return False


@pytest.fixture(scope="session")
def cuda():
    """The cupy module, or skip the test when there is no usable GPU."""
    if not _cuda_ok():
        pytest.skip("needs CuPy and a CUDA GPU")
    import cupy
    return cupy
