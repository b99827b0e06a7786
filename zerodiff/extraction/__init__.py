"""Feature extraction (ZeroDiff Alg. 1): fine-tune F_ce and F_sc on seen classes, extract both feature sets.

Inputs are read by :mod:`zerodiff.extraction.sources`, images transformed by
:mod:`zerodiff.extraction.images`, backbones and checkpoints handled by
:mod:`zerodiff.extraction.backbones`, and :func:`run_extraction` ties them together.
"""

from zerodiff.extraction.config import AugmentConfig, ExtractConfig, ExtractorConfig
from zerodiff.extraction.extract import ExtractionResult, run_extraction, save_extractor
from zerodiff.extraction.sources import ImageSource, load_image_arrays, load_image_folder, load_xlsa17

__all__ = [
    "AugmentConfig",
    "ExtractConfig",
    "ExtractionResult",
    "ExtractorConfig",
    "ImageSource",
    "load_image_arrays",
    "load_image_folder",
    "load_xlsa17",
    "run_extraction",
    "save_extractor",
]
