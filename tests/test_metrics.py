"""Per-class mean top-1 and H, checked against scikit-learn and hand computations."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score, confusion_matrix

import zerodiff.metrics
from zerodiff.metrics import check_predictions, count_per_class, harmonic_mean, mean_per_class, per_class_top1


def reference_mean_per_class(targets: np.ndarray, predictions: np.ndarray, classes: np.ndarray) -> float:
    """Mean recall over the classes that have test samples, from scikit-learn's confusion matrix."""
    # Every predicted label must be a matrix label, or scikit-learn drops those samples.
    labels = np.union1d(classes, predictions)
    matrix = confusion_matrix(targets, predictions, labels=labels)
    rows = np.searchsorted(labels, classes)
    support = matrix[rows].sum(axis=1)
    recall = np.diag(matrix)[rows][support > 0] / support[support > 0]
    return float(recall.mean())


def test_doctests_pass():
    failures, tried = doctest.testmod(zerodiff.metrics)
    assert tried > 0
    assert failures == 0


def test_three_samples_two_right():
    targets = np.array([0, 0, 0, 1, 1])
    predictions = np.array([0, 0, 1, 1, 1])
    result = per_class_top1(targets, predictions, np.array([0, 1]))
    assert result.correct.tolist() == [2, 2]
    assert result.support.tolist() == [3, 2]
    assert result.mean == pytest.approx((2 / 3 + 1.0) / 2, abs=1e-15)
    assert result.mean == pytest.approx(balanced_accuracy_score(targets, predictions), abs=1e-12)


def test_class_without_samples_is_excluded():
    targets = np.array([0, 0, 0, 1])
    predictions = np.array([0, 0, 2, 1])
    result = per_class_top1(targets, predictions, np.array([0, 1, 2]))
    assert result.excluded.tolist() == [2]
    assert result.mean == pytest.approx((2 / 3 + 1.0) / 2)
    assert not np.isnan(result.mean)
    assert np.isnan(result.accuracy[2])
    assert result.accuracy[:2].tolist() == pytest.approx([2 / 3, 1.0])


def test_imbalanced_differs_from_overall():
    # 90 samples of class 0, all right; 10 of class 1, all wrong.
    targets = np.array([0] * 90 + [1] * 10)
    predictions = np.zeros(100, dtype=np.int64)
    result = per_class_top1(targets, predictions, np.array([0, 1]))
    overall = float(np.mean(targets == predictions))
    assert overall == pytest.approx(0.9)
    assert result.mean == pytest.approx(0.5)
    assert result.mean == pytest.approx(balanced_accuracy_score(targets, predictions))


@pytest.mark.parametrize("seed", range(5))
def test_random_labels_match_sklearn(seed):
    rng = np.random.default_rng(seed)
    classes = np.array([3, 5, 8, 11, 20])
    targets = rng.choice(classes[:4], size=200)  # class 20 never appears: excluded
    predictions = rng.choice(np.append(classes, 99), size=200)  # 99 is outside the classes: always wrong
    result = per_class_top1(targets, predictions, classes)
    assert result.mean == pytest.approx(reference_mean_per_class(targets, predictions, classes), abs=1e-12)
    assert result.excluded.tolist() == [20]


def test_prediction_outside_classes_is_wrong():
    # GZSL: an unseen sample (class 7) predicted as a seen class (2) is wrong, not ignored.
    unseen = np.array([7, 9])
    targets = np.array([7, 7, 9, 9])
    predictions = np.array([2, 7, 9, 9])
    result = per_class_top1(targets, predictions, unseen)
    assert result.correct.tolist() == [1, 2]
    assert result.mean == pytest.approx(0.75)


def test_mean_uses_float_division():
    assert mean_per_class(np.array([3]), np.array([1])) == pytest.approx(1 / 3)
    assert isinstance(mean_per_class(np.array([3]), np.array([1])), float)


def test_mean_without_any_samples_raises():
    with pytest.raises(ValueError, match="no class has test samples"):
        mean_per_class(np.array([0, 0]), np.array([0, 0]))


def test_count_per_class_matches_confusion_matrix():
    rng = np.random.default_rng(0)
    classes = np.arange(6)
    targets = rng.integers(0, 6, size=300)
    predictions = rng.integers(0, 6, size=300)
    support, correct = count_per_class(targets, predictions, classes)
    matrix = confusion_matrix(targets, predictions, labels=classes)
    assert support.tolist() == matrix.sum(axis=1).tolist()
    assert correct.tolist() == np.diag(matrix).tolist()


@pytest.mark.parametrize(
    ("targets", "predictions", "classes", "message"),
    [
        (np.array([0, 1]), np.array([0]), np.array([0, 1]), "differ in length"),
        (np.array([0, 5]), np.array([0, 5]), np.array([0, 1]), "outside classes"),
        (np.array([0, 1]), np.array([0, 1]), np.array([], dtype=np.int64), "classes is empty"),
        (np.array([0, 1]), np.array([0, 1]), np.array([0, 1, 1]), "repeated ids"),
        (np.array([0.0, 1.0]), np.array([0, 1]), np.array([0, 1]), "integer labels"),
        (np.array([[0, 1]]), np.array([[0, 1]]), np.array([0, 1]), "must be 1-D"),
    ],
)
def test_invalid_inputs_raise(targets, predictions, classes, message):
    with pytest.raises(ValueError, match=message):
        check_predictions(targets, predictions, classes)


@pytest.mark.parametrize(
    ("unseen", "seen", "expected"),
    [
        (50.0, 50.0, 50.0),
        (40.0, 60.0, 48.0),  # 2 * 40 * 60 / 100
        (0.0, 80.0, 0.0),
        (80.0, 0.0, 0.0),
        (0.0, 0.0, 0.0),
        (100.0, 100.0, 100.0),
        (0.3, 0.6, 0.4),  # 2 * 0.18 / 0.9
    ],
)
def test_harmonic_mean_hand_values(unseen, seen, expected):
    assert harmonic_mean(unseen, seen) == pytest.approx(expected)


def test_harmonic_mean_rejects_negative():
    with pytest.raises(ValueError, match="non-negative"):
        harmonic_mean(-1.0, 50.0)
