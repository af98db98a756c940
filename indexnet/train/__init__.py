"""The trainer around the network, for practitioners: the training step, checkpoints,
metrics, plots and the data sets' presets (``indexnet train``)."""
