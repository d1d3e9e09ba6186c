"""What gets trained: healthy base configurations and the single-fault recipes applied to them.

A `RunConfig` is a complete, hashable description of one training (data, model, optimizer,
schedule, loss, fit arguments). A fault `Recipe` is a base config plus the few fields the fault
changes; the base config itself is the recipe's healthy twin, so twins that several faults share
are trained once (generate.py caches them by config).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, get_args

from service.schemas.report import CauseId

CAUSES: tuple[str, ...] = get_args(CauseId)  # the contract's vocabulary, in its order
HEALTHY = "healthy"
FULL_BATCH = 0  # batch_size value meaning "the whole training set in one batch"


@dataclass(frozen=True)
class RunConfig:
    """One training run. Defaults: a small CNN on 3,000 Fashion-MNIST images, Adam, 12 epochs."""

    # data
    dataset: str = "fashion_mnist"  # "fashion_mnist" | "digits"
    image: str = "full"  # "full" 28x28 | "half" 14x14 | "crop20" (Fashion-MNIST only)
    n_train: int = 3000
    normalization: str = "rescale"  # "none" (raw pixels) | "rescale" | "standardize"
    input_offset: float = 0.0  # added after normalization (a mean-offset fault)
    label_noise: float = 0.0  # fraction of training labels flipped to another class
    augment: bool = False  # random shifts + horizontal flips, in the input pipeline
    # model
    arch: str = "small_cnn"  # see builders.ARCHITECTURES
    width: int = 16  # filters of the first conv layer; later layers use multiples
    dense_units: int = 64
    activation: str = "relu"
    first_kernel: int = 3
    first_stride: int = 1
    first_padding: str = "same"
    init: str | None = None  # None = Keras defaults; "zeros" or "normal:<stddev>"
    l2: float = 0.0
    dropout: float = 0.0
    dense_batchnorm: bool = False  # BatchNormalization after the hidden dense layer
    output: str = "softmax"  # activation of the last layer
    from_logits: bool = False
    # optimization
    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.0  # SGD only
    schedule: str = "constant"  # "constant" | "step_decay" | "cosine" | "exponential"
    decay_every: int = 3  # step_decay: epochs between halvings
    batch_size: int = 32  # FULL_BATCH = whole training set
    epochs: int = 12

    def with_(self, **changes: Any) -> RunConfig:
        return replace(self, **changes)


@dataclass(frozen=True)
class Recipe:
    """A labelled case: `cause` is a CAUSES id or HEALTHY; `fault` holds the changed fields."""

    cause: str
    variant: str
    base: RunConfig
    fault: dict[str, Any] = field(default_factory=dict)

    @property
    def faulty(self) -> RunConfig:
        return self.base.with_(**self.fault)

    @property
    def twin(self) -> RunConfig:
        return self.base


# ---- healthy base configurations -----------------------------------------------------------
F_ADAM = RunConfig()
F_SGD = RunConfig(optimizer="sgd", lr=0.01, momentum=0.9)
F_RMS = RunConfig(optimizer="rmsprop", lr=1e-3)
# The BatchNorm, deep and residual nets train on 14x14 images: 4x cheaper on a small CPU.
F_BN = RunConfig(arch="bn_cnn", image="half", optimizer="rmsprop", lr=1e-3)
F_DEEP = RunConfig(arch="deep_cnn", image="half", optimizer="adamw", lr=1e-3)
F_DEEP_SGD = RunConfig(arch="deep_cnn", image="half", optimizer="sgd", lr=0.02, momentum=0.9)
F_DEEP_TANH = RunConfig(
    arch="deep_cnn", image="half", activation="tanh", optimizer="sgd", lr=0.02, momentum=0.9
)
F_RES = RunConfig(arch="residual", image="half", optimizer="adam", lr=1e-3)
F_HALF = RunConfig(image="half", optimizer="nadam", lr=1e-3)
D_ADAM = RunConfig(dataset="digits", n_train=1297, epochs=20)
D_SGD = RunConfig(dataset="digits", n_train=1297, epochs=20, optimizer="sgd", lr=0.05, momentum=0.9)
F_TANH = RunConfig(activation="tanh")
F_PLAIN_SGD = RunConfig(optimizer="sgd", lr=0.05)
# Smaller sets for batch sizes 1-2, which take one optimizer step per example.
F_SMALL_SGD = RunConfig(n_train=1000, epochs=6, optimizer="sgd", lr=0.02, momentum=0.9)
F_SMALL_PLAIN_SGD = RunConfig(n_train=1000, epochs=6, optimizer="sgd", lr=0.1)
F_SMALL_ADAM = RunConfig(n_train=1000, epochs=6)
F_SMALL_BN = RunConfig(n_train=1000, epochs=6, dense_batchnorm=True)
D_SHORT_SGD = D_SGD.with_(epochs=5)
# Twins of missing_lr_decay: a high-ish rate that is decayed (the fault keeps it constant).
DECAY_SGD = RunConfig(
    optimizer="sgd", lr=0.1, momentum=0.9, schedule="step_decay", decay_every=3, epochs=15
)
DECAY_ADAM = RunConfig(optimizer="adam", lr=2e-2, schedule="cosine", epochs=15)
DECAY_ADAM_LOW = DECAY_ADAM.with_(lr=1e-2)
DECAY_DIGITS = RunConfig(
    dataset="digits",
    n_train=1297,
    epochs=20,
    optimizer="sgd",
    lr=0.1,
    momentum=0.9,
    schedule="step_decay",
    decay_every=4,
)
# Overfitting twins: the same big-headed nets, a normal number of epochs on the full set; the
# faults shrink the training set to a few hundred examples and train 4-6 times longer.
OVER_ADAM = RunConfig(dense_units=512, epochs=10)
OVER_RMS = OVER_ADAM.with_(optimizer="rmsprop")
OVER_CROP = OVER_ADAM.with_(image="crop20", optimizer="sgd", lr=0.02, momentum=0.9)
OVER_HALF = OVER_ADAM.with_(image="half", optimizer="nadam")
OVER_DIGITS = RunConfig(
    dataset="digits", n_train=1297, dense_units=512, epochs=20, optimizer="rmsprop"
)


def _r(cause: str, variant: str, base: RunConfig, **fault: Any) -> Recipe:
    return Recipe(cause, variant, base, fault)


FAULT_RECIPES: tuple[Recipe, ...] = (
    # Too high: diverges (NaN) or saturates the softmax and stalls near ln C.
    _r("learning_rate_too_high", "SGD momentum lr=5.0", F_SGD, lr=5.0),
    _r("learning_rate_too_high", "Adam lr=0.1", F_ADAM, lr=0.1),
    _r("learning_rate_too_high", "RMSprop lr=0.3", F_RMS, lr=0.3),
    _r("learning_rate_too_high", "digits Adam lr=0.5", D_ADAM, lr=0.5),
    # Too low: the loss barely leaves its starting value in the epochs given.
    _r("learning_rate_too_low", "SGD momentum lr=1e-5", F_SGD, lr=1e-5),
    _r("learning_rate_too_low", "Adam lr=1e-6", F_ADAM, lr=1e-6),
    _r("learning_rate_too_low", "RMSprop lr=3e-7", F_RMS, lr=3e-7),
    _r("learning_rate_too_low", "digits SGD momentum lr=1e-5", D_SGD, lr=1e-5),
    # No decay: the twin halves / anneals the same rate, the fault keeps it constant, and the
    # loss stalls on a noisy floor.
    _r(
        "missing_lr_decay",
        "SGD 0.1 momentum 0.9 constant (twin: halve every 3 epochs)",
        DECAY_SGD,
        schedule="constant",
    ),
    _r("missing_lr_decay", "Adam 2e-2 constant (twin: cosine)", DECAY_ADAM, schedule="constant"),
    _r(
        "missing_lr_decay",
        "digits SGD 0.1 momentum constant (twin: halve every 4 epochs)",
        DECAY_DIGITS,
        schedule="constant",
    ),
    # Kept to show a weak case: the constant rate costs little here (usually dropped).
    _r(
        "missing_lr_decay", "Adam 1e-2 constant (twin: cosine)", DECAY_ADAM_LOW, schedule="constant"
    ),
    # Initialization far from variance-preserving, or symmetric.
    _r("poor_weight_initialization", "RandomNormal(stddev=1.0)", F_ADAM, init="normal:1.0"),
    _r(
        "poor_weight_initialization",
        "RandomNormal(stddev=3.0) on a 6-conv net",
        F_DEEP_SGD,
        init="normal:3.0",
    ),
    _r("poor_weight_initialization", "all-zeros kernels", F_SGD, init="zeros"),
    _r(
        "poor_weight_initialization",
        "RandomNormal(stddev=1e-3) on a deep tanh net",
        F_DEEP_TANH,
        init="normal:0.001",
    ),
    # Unnormalized: the arrays fed to fit really are raw 0..255 pixels (or far off-centre).
    # Adam and RMSprop adapt to the input scale and fit raw pixels *faster* on this data, so
    # the raw-pixel faults that raise the training loss use SGD; the Adam case shows the drop.
    _r("unnormalized_inputs", "raw 0-255 pixels, SGD momentum", F_SGD, normalization="none"),
    _r(
        "unnormalized_inputs", "raw 0-255 pixels, plain SGD 0.05", F_PLAIN_SGD, normalization="none"
    ),
    _r(
        "unnormalized_inputs",
        "raw pixels + 100 mean offset, SGD momentum",
        F_SGD,
        normalization="none",
        input_offset=100.0,
    ),
    _r(
        "unnormalized_inputs",
        "rescaled pixels + 50 mean offset, tanh CNN, Adam",
        F_TANH,
        input_offset=50.0,
    ),
    _r(
        "unnormalized_inputs",
        "raw 0-255 pixels, Adam (expected to be dropped)",
        F_ADAM,
        normalization="none",
    ),
    # Label noise: the training labels (and the uploaded sample) are really flipped.
    _r("noisy_labels", "30% symmetric flips, Adam", F_ADAM, label_noise=0.3),
    _r("noisy_labels", "50% symmetric flips, SGD momentum", F_SGD, label_noise=0.5),
    _r("noisy_labels", "70% symmetric flips, BatchNorm CNN", F_BN, label_noise=0.7),
    _r("noisy_labels", "50% symmetric flips, digits", D_ADAM, label_noise=0.5),
    # Regularization strong enough to dominate the data term.
    _r("excessive_regularization", "L2 1.0 on all layers, Adam", F_ADAM, l2=1.0),
    _r("excessive_regularization", "L2 0.1 on all layers, SGD momentum", F_SGD, l2=0.1),
    _r("excessive_regularization", "dropout 0.85 after every block", F_ADAM, dropout=0.85),
    _r("excessive_regularization", "L2 0.1 on a residual net", F_RES, l2=0.1),
    # Too small a model for the task.
    _r("insufficient_capacity", "1-filter convs + 4-unit dense", F_ADAM, width=1, dense_units=4),
    _r("insufficient_capacity", "2-unit dense bottleneck", F_ADAM, dense_units=2),
    _r(
        "insufficient_capacity",
        "near-linear: 1 linear filter, 4x4 pooling, softmax",
        F_SGD,
        arch="tiny_linear",
    ),
    _r(
        "insufficient_capacity",
        "1-filter convs + 2-unit dense on 14x14, Nadam",
        F_HALF,
        width=1,
        dense_units=2,
    ),
    # Overfitting: the training set really is shrunk to a few hundred examples, trained long.
    _r(
        "overfitting",
        "300 examples, 512-unit head, 40 epochs, Adam",
        OVER_ADAM,
        n_train=300,
        epochs=40,
    ),
    _r(
        "overfitting",
        "200 examples, 512-unit head, 40 epochs, RMSprop",
        OVER_RMS,
        n_train=200,
        epochs=40,
    ),
    _r(
        "overfitting",
        "300 cropped 20x20 examples, 40 epochs, SGD momentum",
        OVER_CROP,
        n_train=300,
        epochs=40,
    ),
    _r("overfitting", "150 14x14 examples, 60 epochs, Nadam", OVER_HALF, n_train=150, epochs=60),
    # Kept to show a weak case: on digits the val loss plateaus instead of rising.
    _r(
        "overfitting",
        "digits: 60 examples, 100 epochs, RMSprop",
        OVER_DIGITS,
        n_train=60,
        epochs=100,
    ),
    # Batch size 1 with a rate tuned for 32, or BatchNorm statistics of a single example.
    # (With Adam / RMSprop at 1e-3, batch 1-2 reaches a *lower* loss per epoch here.)
    _r("batch_size_too_small", "batch 1, SGD momentum 0.02", F_SMALL_SGD, batch_size=1),
    _r("batch_size_too_small", "batch 1, plain SGD 0.1", F_SMALL_PLAIN_SGD, batch_size=1),
    _r(
        "batch_size_too_small",
        "batch 1 with BatchNorm after the dense layer",
        F_SMALL_BN,
        batch_size=1,
    ),
    _r("batch_size_too_small", "digits batch 1, SGD momentum 0.05", D_SHORT_SGD, batch_size=1),
    _r(
        "batch_size_too_small", "batch 2, Adam (expected to be dropped)", F_SMALL_ADAM, batch_size=2
    ),
    # Whole-dataset batches: a dozen optimizer steps in all.
    _r("batch_size_too_large", "full batch (3000), Adam", F_ADAM, batch_size=FULL_BATCH),
    _r("batch_size_too_large", "batch 4096 > dataset, SGD momentum", F_SGD, batch_size=4096),
    _r("batch_size_too_large", "full batch, RMSprop", F_RMS, batch_size=FULL_BATCH),
    _r(
        "batch_size_too_large",
        "digits full batch (1297), SGD momentum",
        D_SGD,
        batch_size=FULL_BATCH,
    ),
    # First kernel about as large as the image, or a stride that skips pixels.
    _r(
        "kernel_size_mismatch",
        "21x21 first kernel on 28x28, Adam",
        F_ADAM,
        first_kernel=21,
        first_padding="valid",
    ),
    _r(
        "kernel_size_mismatch",
        "25x25 first kernel on 28x28, RMSprop",
        F_RMS,
        first_kernel=25,
        first_padding="valid",
    ),
    _r(
        "kernel_size_mismatch",
        "3x3 kernel with stride 5, RMSprop",
        F_RMS,
        first_stride=5,
        first_padding="valid",
    ),
    _r(
        "kernel_size_mismatch",
        "2x2 kernel with stride 4, SGD momentum",
        F_SGD,
        first_kernel=2,
        first_stride=4,
        first_padding="valid",
    ),
    # Kept to show a weak case: digits are easy enough for a 7x7 kernel on 8x8.
    _r(
        "kernel_size_mismatch",
        "7x7 first kernel on 8x8 digits",
        D_ADAM,
        first_kernel=7,
        first_padding="valid",
    ),
    # Output activation and loss that disagree.
    _r("output_loss_mismatch", "linear output + from_logits=False, Adam", F_ADAM, output="linear"),
    _r("output_loss_mismatch", "relu output with categorical CE, RMSprop", F_RMS, output="relu"),
    _r(
        "output_loss_mismatch",
        "tanh output with categorical CE, SGD momentum",
        F_SGD,
        output="tanh",
    ),
    _r(
        "output_loss_mismatch",
        "digits linear output + from_logits=False, SGD",
        D_SGD,
        output="linear",
    ),
    # Keras 3 on TensorFlow repairs these two: a softmax/sigmoid output carries its logits
    # (`_keras_logits`) and the loss uses them, so training is identical to the twin.
    _r(
        "output_loss_mismatch",
        "softmax output + from_logits=True (Keras repairs it)",
        F_ADAM,
        from_logits=True,
    ),
    _r(
        "output_loss_mismatch",
        "sigmoid output with categorical CE (Keras repairs it)",
        F_SGD,
        output="sigmoid",
    ),
)

HEALTHY_RECIPES: tuple[Recipe, ...] = tuple(
    Recipe(HEALTHY, variant, base)
    for variant, base in (
        ("small CNN, Adam", F_ADAM),
        ("small CNN, SGD momentum", F_SGD),
        ("small CNN, RMSprop", F_RMS),
        ("BatchNorm CNN, avg + global-avg pooling, RMSprop", F_BN),
        ("6-conv net, global-max pooling, AdamW", F_DEEP),
        ("residual (Add) net, Adam", F_RES),
        ("digits CNN, Adam", D_ADAM),
        ("digits CNN, SGD momentum", D_SGD),
        ("SGD 0.1 momentum, halve every 3 epochs", DECAY_SGD),
        ("Adam 1e-2, cosine", DECAY_ADAM),
        ("14x14 Fashion-MNIST, Nadam", F_HALF),
        ("linear output + from_logits=True", F_ADAM.with_(output="linear", from_logits=True)),
        (
            "Adam with a Keras ExponentialDecay schedule",
            F_ADAM.with_(schedule="exponential", lr=2e-3),
        ),
        ("standardized inputs, RMSprop", F_RMS.with_(normalization="standardize")),
        ("shift + flip augmentation, SGD momentum", F_SGD.with_(augment=True)),
        (
            "20x20 crops, 6-conv net, Adamax",
            F_DEEP.with_(image="crop20", optimizer="adamax", lr=2e-3),
        ),
        ("batch 128, Adam 2e-3", F_ADAM.with_(batch_size=128, lr=2e-3)),
        ("mild L2 1e-4 + dropout 0.25, Adam", F_ADAM.with_(l2=1e-4, dropout=0.25)),
    )
)

ALL_RECIPES: tuple[Recipe, ...] = FAULT_RECIPES + HEALTHY_RECIPES
