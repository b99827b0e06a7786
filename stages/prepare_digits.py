"""Write the embedded digits dataset as an image arrays folder."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import typer

from stages._common import run, stage_command
from zerodiff.digits import load_digits_dataset, write_image_arrays

log = logging.getLogger("zerodiff.prepare_digits")


@stage_command
def main(out: Path = typer.Option(Path("data/digits"), "--out", help="Folder to write images.npy, labels.npy and dataset.json into.")) -> None:
    """Write scikit-learn's digits, seven-segment semantics and the fixed splits to a folder."""
    data = load_digits_dataset()
    write_image_arrays(out, data)
    sizes = ", ".join(f"{name} {indices.size}" for name, indices in data.splits.items())
    seen = np.unique(data.labels[data.splits["trainval"]]).tolist()
    log.info("wrote %d digits to %s (seen classes %s; %s)", data.labels.size, out, seen, sizes)


if __name__ == "__main__":
    run(main)
