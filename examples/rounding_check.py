"""The README's float32 example: PyTorch float32 gradients against the oracle's rounding bounds.

Run: python examples/rounding_check.py (needs torch)
"""
import numpy as np
import torch
from indexnet import oracle

rng = np.random.default_rng(0)
Ws = [rng.standard_normal((64, 32)) / 6, rng.standard_normal((10, 64)) / 8]
bs = [rng.standard_normal(64) / 10, rng.standard_normal(10) / 10]
X, labels = rng.standard_normal((128, 32)), rng.integers(0, 10, 128)

worst = oracle.dense(Ws, bs, ["tanh", "softmax"], "cross_entropy", X, labels, bounds="float32")
prob = oracle.dense(Ws, bs, ["tanh", "softmax"], "cross_entropy", X, labels, bounds="float32",
                    bound_method="probabilistic")   # lam=4

# the implementation under test: PyTorch in float32
model = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.Tanh(), torch.nn.Linear(64, 10))
with torch.no_grad():
    for lin, W, b in zip(model[::2], Ws, bs):
        lin.weight.copy_(torch.tensor(W)); lin.bias.copy_(torch.tensor(b))
loss = torch.nn.functional.cross_entropy(model(torch.tensor(X, dtype=torch.float32)), torch.tensor(labels))
loss.backward()
mine = {"layer 1": {"W": model[0].weight.grad, "b": model[0].bias.grad},
        "layer 2": {"W": model[2].weight.grad, "b": model[2].bias.grad}}

for ref in (worst, prob):
    oracle.assert_gradients_match(mine, ref, dtype="float32")     # passes: every element within its bound
    err = np.abs(mine["layer 1"]["W"].numpy() - ref.grads[0]["W"])
    B = ref.bounds.grads[0]["W"]
    print(f"{ref.bound_method:13s} layer 1 W: largest error {err.max():.2e}, bounds {B.min():.2e} .. {B.max():.2e}, "
          f"median bound/error {np.median((B / err)[err > 0]):.0f}")

mine["layer 1"]["W"][5, 7] *= 1 + 1e-3                             # a bug: one element off by 1e-3
for ref in (worst, prob):
    try:
        oracle.assert_gradients_match(mine, ref, dtype="float32")
        print(f"{ref.bound_method}: passes (the bug is within the bound {ref.bounds.grads[0]['W'][5, 7]:.3g})")
    except AssertionError as e:
        print(e)
torch.testing.assert_close(mine["layer 1"]["W"].double(), torch.tensor(worst.grads[0]["W"]),
                           rtol=1.3e-6, atol=1e-5)
print("torch.testing.assert_close (float32 defaults rtol 1.3e-6, atol 1e-5): passes")
