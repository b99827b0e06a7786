"""Feature preprocessing fitted on the training samples and reused unchanged.

Features are min-max scaled per dimension with the minimum and maximum of the
training features, then divided by the global maximum of the scaled training
features, so that training features lie in [0, 1] (the generators end in a
sigmoid). Test and synthetic features get the identical transform, never a
refit, so they may fall slightly outside [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.preprocessing import MinMaxScaler


@dataclass(frozen=True)
class FeatureScaler:
    """A fitted min-max scaler followed by a division by a global maximum.

    ``data_min`` and ``data_range`` are per-dimension float64 arrays from
    scikit-learn's :class:`MinMaxScaler` (constant dimensions get range 1);
    ``global_max`` is the maximum of the scaled training features.
    """

    data_min: np.ndarray
    data_range: np.ndarray
    global_max: float

    @classmethod
    def fit(cls, features: np.ndarray) -> FeatureScaler:
        """Fit on training features of shape [n, d].

        >>> scaler = FeatureScaler.fit(np.array([[0.0, 2.0], [4.0, 6.0]]))
        >>> scaler.transform(np.array([[2.0, 4.0]])).tolist()
        [[0.5, 0.5]]
        """
        if features.ndim != 2 or features.shape[0] == 0:
            raise ValueError(f"expected a non-empty [n, d] array, got shape {features.shape}")
        scaler = MinMaxScaler().fit(features.astype(np.float64))
        scaled_max = float(scaler.transform(features.astype(np.float64)).max())
        # All-constant training features scale to zero; keep the division a no-op then.
        global_max = scaled_max if scaled_max > 0 else 1.0
        data_range = np.where(scaler.data_range_ > 0, scaler.data_range_, 1.0)
        return cls(data_min=scaler.data_min_.copy(), data_range=data_range, global_max=global_max)

    def transform(self, features: np.ndarray) -> np.ndarray:
        """Apply the fitted transform; returns float32 of the same shape."""
        if features.ndim != 2 or features.shape[1] != self.data_min.shape[0]:
            raise ValueError(f"expected [n, {self.data_min.shape[0]}] features, got shape {features.shape}")
        scaled = (features.astype(np.float64) - self.data_min) / self.data_range
        return (scaled / self.global_max).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        """Return a dict of arrays and floats, suitable for ``torch.save``."""
        return {"data_min": self.data_min, "data_range": self.data_range, "global_max": self.global_max}

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> FeatureScaler:
        return cls(
            data_min=np.asarray(state["data_min"], dtype=np.float64),
            data_range=np.asarray(state["data_range"], dtype=np.float64),
            global_max=float(state["global_max"]),
        )


def normalize_attributes(attributes: np.ndarray) -> np.ndarray:
    """L2-normalise each class's semantic vector (rows of [C, A]); zero rows stay zero.

    >>> normalize_attributes(np.array([[3.0, 4.0], [0.0, 0.0]])).tolist()
    [[0.6000000238418579, 0.800000011920929], [0.0, 0.0]]
    """
    norms = np.linalg.norm(attributes.astype(np.float64), axis=1, keepdims=True)
    return (attributes / np.where(norms > 0, norms, 1.0)).astype(np.float32)
