"""Classifiers: the only code that imports Keras and TensorFlow.

- `registry`: the architectures ``train`` builds (no Keras until one is built);
- `loading`: models from MLflow URIs or ``.keras`` files, in safe mode; logging them;
- `classifier`: a Keras model as the attack's compiled ``predict``;
- `training`, `small_cnn`: training, and the default architecture;
- `imagenet`: Keras applications, EfficientNet-Lite0 and its checkpoint reader;
- `weights`: where pretrained weights are found (nothing is downloaded).

The model contract: a classifier maps float32 (B, H, W, C) raw pixels in 0-255 to class
probabilities (B, K). Models built here carry their preprocessing inside the graph;
models from elsewhere are adapted by ``input_range`` and ``logits``.
"""
