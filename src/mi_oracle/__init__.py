"""mi-oracle: reproducible reference artifacts for mechanistic-interpretability libraries."""

__version__ = "0.1.0"
