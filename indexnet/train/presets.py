"""Named networks and their training settings: the seeds' networks, ready to train.

``indexnet train --preset NAME`` starts from a preset; every option given on the
command line overrides that one setting and nothing else (``--layers`` changes the
layers and, unless ``--loss`` is given, the loss that follows from its output layer;
the preset's optimiser, rate, batch size and epochs stay). A preset carries its data
set: ``--preset seed001`` trains MNIST, and ``--data`` naming a set the preset was not
made for is an error. Without ``--preset`` the data set picks one
(:data:`DATA_PRESETS`): digits, MNIST and Fashion-MNIST train seed 001's network,
x² seed 000's, the sphere the ``sphere`` preset. ``indexnet train --show-config``
prints the resolved settings and where each came from. The ``digits`` preset is seed 001's
network with settings for the small 8×8 set (Adam, batch 200, 100 epochs of 7 steps);
``seed001`` has the settings of the MNIST run (momentum 0.9, lr 0.05 cosine, weight
decay 1e-4, batch 100, 30 epochs, float32).

=========  ===========================================  ==============  =========
preset     layers (input from the data)                 loss            data
=========  ===========================================  ==============  =========
seed001    800:relu,10:softmax (seed 001's 784-800-10   cross_entropy   mnist,
           on MNIST)                                                    fashion
digits     800:relu,10:softmax (seed 001's network,     cross_entropy   digits
           Adam, batch 200, 100 short epochs)
seed000    16:relu,16:relu,1:identity (1-16-16-1:       mse             square
           seed 000's 3-layer regression net, trained
           by full-batch gradient descent, its eq. 3
           with the sign corrected)
seed002    3:relu,4:relu,3:identity (seed 002's         half_se         sphere
           2-3-4-1 ReLU net with 3 outputs: the sphere
           maps 2 angles to a 3-D point, so 2-3-4-3;
           trained by its Algorithm 1, one example
           drawn uniformly per step)
sphere     64:tanh,64:tanh,3:identity                   mse             sphere
cnn        conv8@3x3/p1:relu,maxpool2,conv16@3x3/p1:    cross_entropy   digits,
           relu,maxpool2,10:softmax                                     mnist,
                                                                        fashion
dense-cnn  28:relu,10:softmax (a dense net with about   cross_entropy   digits,
           the cnn preset's parameter count)                            mnist,
                                                                        fashion
mnist-     800:relu,10:softmax, seed001's settings,     cross_entropy   mnist,
affine     40 epochs, --augment affine (rotate ±10°,                    fashion
           shear ±10°, scale ±10 %, shift ±2 px)
mnist-     800:relu,10:softmax, seed001's settings,     cross_entropy   mnist,
elastic    60 epochs, --augment elastic:34,4 (Simard)                   fashion
mnist-cnn  conv8@5x5:relu,maxpool2,conv16@5x5:relu,     cross_entropy   mnist,
           maxpool2,100:relu,10:softmax (seed 000 §3's                  fashion
           convolutional classifier on 1×28×28), 20
           epochs, --augment affine
=========  ===========================================  ==============  =========

The distortions (``augment``) are ``derivations/augment.md``; they need image data.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from indexnet._validate import check_choice

__all__ = ["Preset", "PRESETS", "DATA_PRESETS", "get_preset", "preset_for_data"]


@dataclass(frozen=True)
class Preset:
    """A named network and the training settings that suit it.

    Attributes
    ----------
    name : str
    description : str
    layers : str
        A ``--layers`` spec (see :mod:`indexnet.nn.spec`).
    loss : str
    data : str
        The data set it trains when ``--data`` is not given.
    settings : dict
        Training options (``optimizer``, ``lr``, ``epochs``, ``batch_size``, ``mode``,
        ``schedule``, ...) as :class:`indexnet.train.trainer.TrainConfig` fields.
    also : tuple of str
        Other data sets of the same input and output shape it may train (``--data``);
        any other ``--data`` is an error.
    """

    name: str
    description: str
    layers: str
    loss: str
    data: str
    settings: dict[str, Any] = field(default_factory=dict)
    also: tuple[str, ...] = ()

    @property
    def datasets(self) -> tuple[str, ...]:
        """Every data set the preset may train, its own first."""
        return (self.data, *self.also)


_IMAGES = ("digits", "mnist", "fashion")
_CLASSIFIER = {"optimizer": "momentum", "lr": 0.05, "momentum": 0.9, "schedule": "cosine",
               "batch_size": 32, "epochs": 20, "mode": "minibatch"}

PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset("seed001", "seed 001's digit classifier: one 800-unit ReLU layer, softmax, cross-entropy",
               "800:relu,10:softmax", "cross_entropy", "mnist",
               dict(_CLASSIFIER, batch_size=100, epochs=30, weight_decay=1e-4, dtype="float32"), also=("fashion",)),
        Preset("digits", "seed 001's network (64-800-10 on the 8×8 digits) with settings tuned for the small set",
               "800:relu,10:softmax", "cross_entropy", "digits",
               {"optimizer": "adam", "lr": 0.002, "schedule": "cosine", "batch_size": 200, "epochs": 100,
                "mode": "minibatch"}),
        Preset("seed000", "seed 000's 3-layer regression net, full-batch gradient descent (eq. 3, sign corrected)",
               "16:relu,16:relu,1:identity", "mse", "square",
               {"optimizer": "sgd", "lr": 0.1, "schedule": "constant", "mode": "fullbatch", "epochs": 4000}),
        Preset("seed002", "seed 002's 2-3-4-1 ReLU net as 2-3-4-3 on the sphere, Algorithm 1 SGD",
               "3:relu,4:relu,3:identity", "half_se", "sphere",
               {"optimizer": "sgd", "lr": 0.01, "schedule": "constant", "mode": "sgd", "epochs": 30}),
        Preset("sphere", "a 2-64-64-3 tanh net mapping (θ, φ) to the point on the sphere (seed 003, Figure 1)",
               "64:tanh,64:tanh,3:identity", "mse", "sphere",
               {"optimizer": "adam", "lr": 0.003, "schedule": "cosine", "batch_size": 32, "epochs": 60,
                "mode": "minibatch"}),
        Preset("cnn", "a small CNN on the digits images (1, 8, 8)",
               "conv8@3x3/p1:relu,maxpool2,conv16@3x3/p1:relu,maxpool2,10:softmax", "cross_entropy", "digits",
               dict(_CLASSIFIER, epochs=30), also=_IMAGES[1:]),
        Preset("dense-cnn", "a dense net with about the cnn preset's parameter count, for comparison",
               "28:relu,10:softmax", "cross_entropy", "digits", dict(_CLASSIFIER, epochs=30),
               also=_IMAGES[1:]),
        Preset("mnist-affine", "seed 001's 784-800-10 on MNIST with random affine distortions of every batch",
               "800:relu,10:softmax", "cross_entropy", "mnist",
               dict(_CLASSIFIER, batch_size=100, epochs=40, weight_decay=1e-4, dtype="float32",
                    augment="affine:rotate=10,shear=10,scale=0.1,shift=2"), also=("fashion",)),
        Preset("mnist-elastic", "seed 001's 784-800-10 on MNIST with Simard's elastic distortions (α 34, σ 4)",
               "800:relu,10:softmax", "cross_entropy", "mnist",
               dict(_CLASSIFIER, batch_size=100, epochs=60, weight_decay=1e-4, dtype="float32",
                    augment="elastic:34,4"), also=("fashion",)),
        Preset("mnist-cnn", "seed 000's convolutional classifier sized for MNIST (1, 28, 28), with affine distortions",
               "conv8@5x5:relu,maxpool2,conv16@5x5:relu,maxpool2,100:relu,10:softmax", "cross_entropy", "mnist",
               dict(_CLASSIFIER, batch_size=100, epochs=20, weight_decay=1e-4, dtype="float32",
                    augment="affine:rotate=10,shear=10,scale=0.1,shift=2"), also=("fashion",)),
    )
}

#: the preset a data set trains when neither ``--preset`` nor ``--layers`` is given
DATA_PRESETS: dict[str, str] = {
    "digits": "digits",
    "mnist": "seed001",
    "fashion": "seed001",
    "square": "seed000",
    "sphere": "sphere",
}


def get_preset(name: str, data: str | None = None) -> Preset:
    """The preset called ``name``; a ValueError lists the choices otherwise.

    ``data`` (the ``--data`` given, if any) must be one of the preset's data sets.
    """
    preset = PRESETS[check_choice("--preset", name, PRESETS)]
    if data is not None and data not in preset.datasets:
        raise ValueError(
            f"--preset {name}: made for --data {' or '.join(preset.datasets)}, got --data {data}; drop --data "
            f"(the preset trains {preset.data}) or choose a preset for {data}"
            + (f" (its default: {DATA_PRESETS[data]})" if data in DATA_PRESETS else "")
        )
    return preset


def preset_for_data(data: str) -> Preset | None:
    """The default preset of a data set, or None (CSV: the network is sized from the file)."""
    name = DATA_PRESETS.get(data)
    return None if name is None else PRESETS[name]
