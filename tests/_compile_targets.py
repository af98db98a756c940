"""Two small cached kernels for tests/test_compile.py: a child process imports this module
to compile them (so they must be module-level and cached)."""
import numba


@numba.njit(cache=True)
def scaled(x, c):
    """x_i ← c x_i."""
    for i in range(x.shape[0]):
        x[i] *= c
    return x


@numba.njit(cache=True)
def total(x):
    """Σ_i x_i."""
    s = 0.0
    for i in range(x.shape[0]):
        s += x[i]
    return s
