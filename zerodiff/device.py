"""Device selection and seeding."""

from __future__ import annotations

import random
from typing import Literal

import numpy as np
import torch

DeviceChoice = Literal["auto", "cpu", "cuda"]


def resolve_device(choice: str) -> torch.device:
    """Map a ``device`` parameter to a torch device.

    ``auto`` picks CUDA when it is available and the CPU otherwise; ``cuda``
    raises if no CUDA device is present.
    """
    from zerodiff.errors import UserError

    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice == "cpu":
        return torch.device("cpu")
    if choice == "cuda":
        if not torch.cuda.is_available():
            raise UserError("device 'cuda' was requested but no CUDA device is available; use device: auto or cpu")
        return torch.device("cuda")
    raise UserError(f"invalid device {choice!r}; expected one of auto, cpu, cuda")


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch, and return a CPU generator seeded the same way."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    generator = torch.Generator()
    generator.manual_seed(seed)
    return generator
