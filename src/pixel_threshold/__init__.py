"""pixel-threshold: few-pixel and small-threshold black-box attacks, tracked in MLflow."""

__version__ = "0.1.0"
