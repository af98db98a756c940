"""Hypothesis strategies shared by the network and oracle tests: random dense architectures."""
import numpy as np
from hypothesis import strategies as st

from indexnet.kernels.activations import CODES
from indexnet.nn.losses import LOSSES

ELEMENTWISE = list(CODES)
#: (loss, output activation, target kind): every loss with the output activation it
#: requires, or, for the squared errors, with every output activation it allows
HEADS = [(loss.name, act, loss.targets) for loss in LOSSES.values()
         for act in ([loss.output_activation] if loss.output_activation else ELEMENTWISE + ["softmax"])]


def random_targets(kind, S, N, rng):
    """Targets of S outputs for N samples, samples last (S, N), C-contiguous."""
    if kind == "one_hot":
        return np.ascontiguousarray(np.eye(S)[:, rng.integers(0, S, N)])
    if kind == "unit" or (kind == "real" and rng.random() < 0.5):
        return rng.random((S, N))
    return rng.standard_normal((S, N))


@st.composite
def architectures(draw, max_depth=4, max_size=5):
    """(sizes, activations, loss, target kind, N, seed) of a random dense network.

    Depth 1..max_depth, layer sizes 1..max_size (at least 2 outputs for one-hot targets
    or a softmax output), N from 1 to 4, hidden activations drawn from every elementwise one.
    """
    depth = draw(st.integers(1, max_depth))
    sizes = [draw(st.integers(1, max_size)) for _ in range(depth + 1)]
    loss, out_act, kind = draw(st.sampled_from(HEADS))
    if kind == "one_hot" or out_act == "softmax":
        sizes[-1] = max(sizes[-1], 2)
    acts = [draw(st.sampled_from(ELEMENTWISE)) for _ in range(depth - 1)] + [out_act]
    N = draw(st.integers(1, 4))
    seed = draw(st.integers(0, 2**16))
    return sizes, acts, loss, kind, N, seed
