"""Label audit of an uploaded sample: K-fold out-of-sample probabilities from a small standard
model, then confident learning (cleanlab) to find the examples whose label disagrees with them.

The model is chosen for the input's shape, not the user's architecture: the audit asks whether
the labels are learnable from the inputs, so a plain, well-initialised net on standardized
inputs is the fairest judge (the user's model may itself be the bug).

"""

from __future__ import annotations

import numpy as np

from service.schemas.report import LabelAudit, LabelSuspect

FOLDS = 4
# K-fold is repeated on this many independent splits (and initialisations), and each example's
# out-of-sample probabilities averaged: one judge's quirks on one split then do not make a
# suspect, and the averaged probabilities are better calibrated.
REPEATS = 2
METHOD = (
    "cleanlab find_label_issues (filter_by=both) on {k}-fold out-of-sample MLP probabilities "
    "averaged over {r} splits; suspects whose given label gets under 1/C"
)


# Standardized values are clipped here: a pixel that is almost always 0 (an image's border)
# standardizes to tens of σ on the few examples where it is not, and would dominate the MLP.
_CLIP_SIGMAS = 5.0


def _standardized(x: np.ndarray) -> np.ndarray:
    """Per-feature (per-pixel) standardization with the sample's own statistics, clipped at
    ±5σ. They use no label, so sharing them across folds leaks nothing the audit judges."""
    flat = x.reshape(len(x), -1).astype(np.float64)
    std = flat.std(axis=0)
    z = (flat - flat.mean(axis=0)) / np.where(std > 0, std, 1.0)
    return np.clip(z, -_CLIP_SIGMAS, _CLIP_SIGMAS).astype(np.float32)


def _folded_model(features: int, classes: int, branches: int) -> object:
    """Independent MLPs (one hidden layer of 128 ReLUs each) side by side in one Keras model,
    output (N, branches, classes): one trace and one `fit` instead of one per fold. The
    branches share no weight and each is trained only on its own folds (sample weights), so
    each is exactly the model K-fold cross-validation would train. On a few hundred examples
    such an MLP matches a small CNN's held-out accuracy at a fraction of the cost (a CNN needs
    more epochs)."""
    import keras

    layers = keras.layers
    inputs = keras.Input((features,))
    heads = [
        layers.Dense(classes, activation="softmax")(layers.Dense(128, activation="relu")(inputs))
        for _ in range(branches)
    ]
    outputs = layers.Reshape((branches, classes))(layers.Concatenate()(heads))
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    return model


def out_of_sample_probabilities(
    x: np.ndarray, y: np.ndarray, classes: int, seed: int = 0, epochs: int = 15
) -> np.ndarray:
    """(N, classes) probabilities, each row the mean over REPEATS models that never saw
    that example (one per K-fold split)."""
    import keras

    rng = np.random.default_rng(seed)
    # Split r puts example i in fold[r, i]; its branch r·K + k trains on every example outside
    # that fold and predicts it.
    fold = np.stack([rng.permutation(len(x)) % FOLDS for _ in range(REPEATS)])
    branch = fold + FOLDS * np.arange(REPEATS)[:, None]  # (REPEATS, N): the branch predicting i
    weights = np.ones((len(x), REPEATS * FOLDS), dtype=np.float32)
    for r in range(REPEATS):
        weights[np.arange(len(x)), branch[r]] = 0.0
    inputs = _standardized(x)
    keras.utils.set_random_seed(seed)
    model = _folded_model(inputs.shape[1], classes, REPEATS * FOLDS)
    # A fixed, short schedule: early stopping would need yet another split, and a net
    # stopped early fits the clean majority before it memorises the flipped labels.
    model.fit(  # type: ignore[attr-defined]
        inputs,
        np.repeat(y[:, None], REPEATS * FOLDS, axis=1),
        sample_weight=weights,
        batch_size=64,
        epochs=epochs,
        verbose=0,
    )
    every = np.asarray(model.predict(inputs, verbose=0), dtype=np.float64)  # type: ignore[attr-defined]
    keras.backend.clear_session()
    return every[np.arange(len(x))[None, :], branch].mean(axis=0)


def audit(x: np.ndarray, y: np.ndarray, classes: int | None = None, seed: int = 0) -> LabelAudit:
    """The label audit of a sample: estimated noise rate, flip matrix and suspects."""
    from cleanlab.count import compute_confident_joint, estimate_joint, estimate_latent
    from cleanlab.filter import find_label_issues

    labels = np.asarray(y).astype(np.int64)
    n_classes = max(int(labels.max()) + 1, classes or 0)
    x = np.asarray(x, dtype=np.float32)
    probs = out_of_sample_probabilities(x, labels, n_classes, seed)
    # cleanlab needs every class to appear; absent classes get no probability mass anyway.
    issues = find_label_issues(
        labels,
        probs,
        filter_by="both",
        return_indices_ranked_by="self_confidence",
        n_jobs=1,  # Celery's prefork children are daemonic: they may not fork a pool
    )
    joint = estimate_joint(labels, probs)
    confident = compute_confident_joint(labels, probs)
    _, noise_matrix, _ = estimate_latent(confident, labels)
    likely = probs.argmax(axis=1)
    given = probs[np.arange(len(labels)), labels]
    # A suspect's given label gets less out-of-sample probability than a uniform guess: the
    # judge rules it out rather than hesitating between two classes it confuses itself
    # (shirt and T-shirt), whose examples would otherwise fill the list.
    ruled_out = [i for i in np.asarray(issues) if given[i] < 1.0 / n_classes]
    suspects = [
        LabelSuspect(
            index=int(i),
            given=int(labels[i]),
            likely=int(likely[i]),
            confidence=round(float(probs[i, likely[i]]), 4),
        )
        for i in ruled_out
    ]
    return LabelAudit(
        method=METHOD.format(k=FOLDS, r=REPEATS),
        folds=FOLDS,
        num_examples=len(labels),
        out_of_sample_accuracy=round(float(np.mean(likely == labels)), 4),
        noise_rate=round(float(max(0.0, 1.0 - np.trace(joint))), 4),
        flip_matrix=[[round(float(v), 4) for v in row] for row in noise_matrix],
        suspects=suspects,
    )


def audit_upload(x: np.ndarray, y: np.ndarray, classes: int | None, cap: int) -> LabelAudit:
    """The audit a probe run makes of an uploaded sample: at most `cap` examples (a seeded
    choice, as many as a probe trains on), its suspects named by their row in the upload."""
    rows = np.sort(np.random.default_rng(0).permutation(len(y))[:cap])
    found = audit(x[rows], y[rows], classes)
    mapped = [q.model_copy(update={"index": int(rows[q.index])}) for q in found.suspects]
    return found.model_copy(update={"suspects": mapped})
