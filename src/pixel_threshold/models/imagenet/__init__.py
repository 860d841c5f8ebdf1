"""ImageNet classifiers: Keras applications, EfficientNet-Lite0 and its checkpoint reader."""
