"""Layers: kernels assembled into the pieces of a network.

Every layer follows :class:`indexnet.layers.base.Layer`: a frozen description
(sizes, activation) plus ``init_params``, ``forward`` and ``backward`` that call the
kernels of one engine. Parameters live outside the layer, in the network, so the same
layer description serves any number of parameter sets.
"""
from indexnet.layers.base import Layer, LayerCache, LayerGrads
from indexnet.layers.dense import Dense

__all__ = ["Layer", "LayerCache", "LayerGrads", "Dense"]
