"""Zero-shot accuracy: per-class mean top-1, and U, S, H for generalised ZSL.

The zero-shot standard is the mean over classes of each class's top-1 accuracy,
not the overall accuracy, so that a large class cannot hide a poor small one:

    acc = (1 / |K|) * sum_{c in K} correct_c / support_c

where ``support_c`` is the number of test samples of class c, ``correct_c`` how
many of them were predicted as c, and K the classes with ``support_c > 0``.
A class without test samples is excluded from the mean and reported, so the
result is never a division by zero or NaN. Divisions are in floating point.

In generalised ZSL, U and S are this mean over the unseen and the seen test
classes, with predictions over all classes in global label ids (an unseen
sample predicted as a seen class counts as wrong), and H = 2 U S / (U + S),
with H = 0 when U + S = 0.

The work is split as validation (:func:`check_predictions`), computation
(:func:`count_per_class`) and reduction (:func:`mean_per_class`);
:func:`per_class_top1` chains them. Accuracies here are fractions in [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PerClassAccuracy:
    """Per-class top-1 counts and their mean over the classes that have test samples.

    ``classes``, ``support`` and ``correct`` are aligned int64 arrays of shape [K];
    ``mean`` is a fraction in [0, 1]; ``excluded`` lists the class ids with
    ``support == 0``, which do not enter the mean.
    """

    classes: np.ndarray
    support: np.ndarray
    correct: np.ndarray
    mean: float
    excluded: np.ndarray

    @property
    def accuracy(self) -> np.ndarray:
        """Per-class accuracy as float64 [K]; NaN marks an excluded class (no test samples)."""
        accuracy = np.full(self.classes.shape, np.nan)
        has_samples = self.support > 0
        accuracy[has_samples] = self.correct[has_samples] / self.support[has_samples]
        return accuracy


def check_predictions(targets: np.ndarray, predictions: np.ndarray, classes: np.ndarray) -> None:
    """Raise ``ValueError`` unless the inputs form a valid per-class accuracy problem.

    ``targets`` and ``predictions`` are integer label arrays of equal shape [n];
    ``classes`` is a non-empty integer array [K] of distinct class ids, and every
    target must be one of them. Predictions may be any label, including one
    outside ``classes``: that prediction is simply wrong.
    """
    targets = np.asarray(targets)
    predictions = np.asarray(predictions)
    classes = np.asarray(classes)
    for name, array in (("targets", targets), ("predictions", predictions), ("classes", classes)):
        if array.ndim != 1:
            raise ValueError(f"{name} must be 1-D, got shape {array.shape}")
        if array.size and not np.issubdtype(array.dtype, np.integer):
            raise ValueError(f"{name} must hold integer labels, got dtype {array.dtype}")
    if targets.shape != predictions.shape:
        raise ValueError(f"targets and predictions differ in length: {targets.shape[0]} and {predictions.shape[0]}")
    if classes.size == 0:
        raise ValueError("classes is empty; at least one class is needed")
    if np.unique(classes).size != classes.size:
        raise ValueError(f"classes has repeated ids: {classes.tolist()}")
    unknown = np.setdiff1d(targets, classes)
    if unknown.size:
        raise ValueError(f"targets contain labels outside classes: {unknown[:5].tolist()}")


def count_per_class(targets: np.ndarray, predictions: np.ndarray, classes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(support, correct)``, int64 arrays [K] aligned with ``classes``.

    >>> support, correct = count_per_class(np.array([0, 0, 0, 1]), np.array([0, 0, 1, 1]), np.array([0, 1, 2]))
    >>> support.tolist(), correct.tolist()
    ([3, 1, 0], [2, 1, 0])
    """
    targets = np.asarray(targets)
    predictions = np.asarray(predictions)
    classes = np.asarray(classes)
    hits = targets == predictions
    support = np.array([np.count_nonzero(targets == class_id) for class_id in classes], dtype=np.int64)
    correct = np.array([np.count_nonzero(hits & (targets == class_id)) for class_id in classes], dtype=np.int64)
    return support, correct


def mean_per_class(support: np.ndarray, correct: np.ndarray) -> float:
    """Return the mean of ``correct / support`` over the classes with ``support > 0``.

    Classes with no test samples are skipped; if no class has any, there is no
    accuracy to report and ``ValueError`` is raised.

    >>> mean_per_class(np.array([3, 1, 0]), np.array([2, 1, 0]))  # (2/3 + 1/1) / 2
    0.8333333333333333
    """
    support = np.asarray(support, dtype=np.int64)
    correct = np.asarray(correct, dtype=np.int64)
    has_samples = support > 0
    if not has_samples.any():
        raise ValueError("no class has test samples, so the per-class mean accuracy is undefined")
    return float(np.mean(correct[has_samples].astype(np.float64) / support[has_samples]))


def per_class_top1(targets: np.ndarray, predictions: np.ndarray, classes: np.ndarray) -> PerClassAccuracy:
    """Validate, count and reduce: per-class top-1 accuracy and its mean over ``classes``.

    >>> result = per_class_top1(np.array([0, 0, 0, 1, 1]), np.array([0, 0, 1, 1, 1]), np.array([0, 1, 2]))
    >>> round(result.mean, 4), result.excluded.tolist()
    (0.8333, [2])
    """
    check_predictions(targets, predictions, classes)
    classes = np.asarray(classes, dtype=np.int64)
    support, correct = count_per_class(targets, predictions, classes)
    return PerClassAccuracy(
        classes=classes,
        support=support,
        correct=correct,
        mean=mean_per_class(support, correct),
        excluded=classes[support == 0],
    )


def harmonic_mean(unseen: float, seen: float) -> float:
    """Return H = 2 U S / (U + S), the GZSL summary of unseen and seen accuracy; 0 when U + S = 0.

    Works in any unit (fractions or percent), as long as both inputs share it.

    >>> harmonic_mean(0.5, 1.0)
    0.6666666666666666
    >>> harmonic_mean(0.0, 0.0)
    0.0
    """
    if unseen < 0 or seen < 0:
        raise ValueError(f"accuracies must be non-negative, got U={unseen}, S={seen}")
    total = unseen + seen
    if total == 0:
        return 0.0
    return 2.0 * unseen * seen / total
