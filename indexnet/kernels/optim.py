"""Update rules: gradient descent with L2 decay, classical momentum, Adam.

Beside ``derivations/optim.md``. Every array is flat and 1-D (a parameter of any shape is
passed as its free ``reshape(-1)`` view)::

    theta  (P,)   the parameters θ before the step
    g      (P,)   their gradient g = ∂J/∂θ
    v, m   (P,)   optimiser state (velocity; Adam's first and second moments),
                  updated in place
    out    (P,)   receives θ after the step; may be ``theta`` itself (in-place update)

Argument order: ``theta, g, <state arrays>, <step number t>, lr, <rule constants>,
weight_decay, out``; every form writes ``out`` (and the state) and returns ``out``.
Hyperparameters are cast to the dtype of ``out`` first, so float32 parameters are
updated in float32 arithmetic in all three forms.

The rules are elementwise: no sums, so nothing to collapse. The literal forms apply the
lines of the derivation one after another, each as its own pass over every index i, as
the equation block is written; the loops forms fuse the lines into one ``prange`` pass
per element (one sweep over memory) and hoist the per-step scalars. Every element sees
the same IEEE operations in the same order, so literal == loops bit for bit in float64;
the numpy forms use the same operations vectorized and agree to rtol 1e-12 or better.
An element reads its own θ_i before ``out`` receives it, so ``out`` may alias
``theta`` in every form.
"""
import numpy as np
from numba import prange

from indexnet._jit import exact, fastform, literal, serial


def _bias_correction(beta, t):
    """1 − β^t with a float exponent, so NumPy, Python and Numba all call libm ``pow``."""
    return 1.0 - beta ** float(t)


_bias_correction_jit = serial(_bias_correction)


# ---------------------------------------------------------------- O8: SGD with L2 decay
@literal
def sgd_step_literal(theta, g, lr, weight_decay, out):
    """ĝ_i = g_i + λ θ_i, then θ_i ← θ_i − η ĝ_i, element by element. derivations/optim.md#O8"""
    dt = out.dtype.type
    eta, lam = dt(lr), dt(weight_decay)
    P = theta.shape[0]
    for i in range(P):
        g_hat = g[i] + lam * theta[i]  # the penalised gradient, eq. O7
        out[i] = theta[i] - eta * g_hat
    return out


@exact
def sgd_step_loops(theta, g, lr, weight_decay, out):
    """θ_i ← θ_i − η (g_i + λ θ_i), ``prange`` over i. derivations/optim.md#O8"""
    dt = out.dtype.type
    eta, lam = dt(lr), dt(weight_decay)
    for i in prange(theta.shape[0]):
        out[i] = theta[i] - eta * (g[i] + lam * theta[i])
    return out


def sgd_step_numpy(theta, g, lr, weight_decay, out):
    """θ ← θ − η (g + λ θ), vectorized. derivations/optim.md#O8"""
    dt = out.dtype.type
    np.subtract(theta, dt(lr) * (g + dt(weight_decay) * theta), out=out)
    return out


# ----------------------------------------------------------------- O9: classical momentum
@literal
def momentum_step_literal(theta, g, v, lr, mu, weight_decay, out):
    """v_i ← μ v_i − η (g_i + λ θ_i); θ_i ← θ_i + v_i, line by line. derivations/optim.md#O9"""
    dt = out.dtype.type
    eta, mom, lam = dt(lr), dt(mu), dt(weight_decay)
    P = theta.shape[0]
    for i in range(P):
        v[i] = mom * v[i] - eta * (g[i] + lam * theta[i])
    for i in range(P):
        out[i] = theta[i] + v[i]
    return out


@exact
def momentum_step_loops(theta, g, v, lr, mu, weight_decay, out):
    """Both lines of the momentum step fused, ``prange`` over i. derivations/optim.md#O9"""
    dt = out.dtype.type
    eta, mom, lam = dt(lr), dt(mu), dt(weight_decay)
    for i in prange(theta.shape[0]):
        vi = mom * v[i] - eta * (g[i] + lam * theta[i])
        v[i] = vi
        out[i] = theta[i] + vi
    return out


def momentum_step_numpy(theta, g, v, lr, mu, weight_decay, out):
    """v ← μ v − η (g + λ θ); θ ← θ + v, vectorized. derivations/optim.md#O9"""
    dt = out.dtype.type
    np.subtract(dt(mu) * v, dt(lr) * (g + dt(weight_decay) * theta), out=v)
    np.add(theta, v, out=out)
    return out


# --------------------------------------------------------------------------- O12: Adam
@literal
def adam_step_literal(theta, g, m, v, t, lr, beta1, beta2, eps, weight_decay, out):
    """The five lines of the Adam step, each a pass over i, as written. derivations/optim.md#O12

    ``t`` is the number of this step (1 for the first), the exponent of the bias
    corrections; ĝ_i = g_i + λ θ_i is recomputed where a line uses it (θ is unchanged
    until the last line, so it is the same number each time).
    """
    dt = out.dtype.type
    eta, b1, b2, ep, lam = dt(lr), dt(beta1), dt(beta2), dt(eps), dt(weight_decay)
    one = dt(1)
    P = theta.shape[0]
    for i in range(P):
        m[i] = b1 * m[i] + (one - b1) * (g[i] + lam * theta[i])
    for i in range(P):
        gh = g[i] + lam * theta[i]
        v[i] = b2 * v[i] + (one - b2) * (gh * gh)
    for i in range(P):
        m_hat = m[i] / dt(_bias_correction_jit(beta1, t))
        v_hat = v[i] / dt(_bias_correction_jit(beta2, t))
        out[i] = theta[i] - eta * m_hat / (np.sqrt(v_hat) + ep)
    return out


@exact
def adam_step_loops(theta, g, m, v, t, lr, beta1, beta2, eps, weight_decay, out):
    """The Adam step fused into one pass, ``prange`` over i. derivations/optim.md#O12

    The bias corrections 1 − β₁^t and 1 − β₂^t are computed once per call, outside the
    loop; every element then performs the literal form's operations in its order.
    """
    dt = out.dtype.type
    eta, b1, b2, ep, lam = dt(lr), dt(beta1), dt(beta2), dt(eps), dt(weight_decay)
    one = dt(1)
    c1 = dt(_bias_correction_jit(beta1, t))
    c2 = dt(_bias_correction_jit(beta2, t))
    for i in prange(theta.shape[0]):
        gh = g[i] + lam * theta[i]
        mi = b1 * m[i] + (one - b1) * gh
        vi = b2 * v[i] + (one - b2) * (gh * gh)
        m[i] = mi
        v[i] = vi
        out[i] = theta[i] - eta * (mi / c1) / (np.sqrt(vi / c2) + ep)
    return out


def adam_step_numpy(theta, g, m, v, t, lr, beta1, beta2, eps, weight_decay, out):
    """m ← β₁m + (1−β₁)ĝ; v ← β₂v + (1−β₂)ĝ⊙ĝ; θ ← θ − η m̂/(√v̂ + ε). derivations/optim.md#O12"""
    dt = out.dtype.type
    b1, b2 = dt(beta1), dt(beta2)
    one = dt(1)
    gh = g + dt(weight_decay) * theta
    np.add(b1 * m, (one - b1) * gh, out=m)
    np.add(b2 * v, (one - b2) * (gh * gh), out=v)
    m_hat = m / dt(_bias_correction(beta1, t))
    v_hat = v / dt(_bias_correction(beta2, t))
    np.subtract(theta, dt(lr) * m_hat / (np.sqrt(v_hat) + dt(eps)), out=out)
    return out


@fastform
def decay_fast(theta, lr, weight_decay):
    """θ_i ← (1 − ηλ) θ_i on a flat view: the decay part of a folded step. derivations/optim.md#O16

    The factor 1 − ηλ is formed once, in float64, and rounded to θ's dtype. ``prange``
    over i; the trainer's composer applies it before the folded gradient step (dense.md
    D2.6, D2.8) and calls its serial twin for small parameters.
    """
    factor = theta.dtype.type(1.0 - lr * weight_decay)
    for i in prange(theta.shape[0]):
        theta[i] *= factor
    return theta
