"""ZeroDiff: diffusion-based generative zero-shot learning, as a reusable library.

The pipeline stages in ``stages/`` are thin wrappers around this package.
"""

__version__ = "0.1.0"
