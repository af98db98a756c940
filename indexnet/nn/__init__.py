"""A network and its parts, with every engine: layers, losses, optimisers, the engine's choice of form.

Readers and practitioners meet :class:`indexnet.nn.network.Network` here; its layers call
the kernels of :mod:`indexnet.kernels` through :func:`indexnet.nn.engine.form`.
"""
