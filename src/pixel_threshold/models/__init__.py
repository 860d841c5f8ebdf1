"""Classifiers: the only code that imports a model framework, one backend per kind.

- `sources`: the kind of model a ``model`` parameter names;
- `loading`: `load_classifier` for every kind; Keras models in safe mode; logging them;
- `scoring`: the contract every backend keeps (`Classifier`, `Forward`), outputs
  detection, predicted labels;
- `conventions`, `options`: what a model expects of its input, set by parameters;
- `classifier`: a Keras model as the attack's compiled ``predict``;
- `backends`: ONNX Runtime, PyTorch, scikit-learn and pyfunc, HTTP scoring servers;
- `registry`, `training`, `small_cnn`, `imagenet`, `weights`: the models ``train``
  builds, and where pretrained weights are found (nothing is downloaded).

The model contract: a classifier maps float32 (B, H, W, C) raw pixels in 0-255 to class
scores (B, K): probabilities, logits or log-probabilities. Models built here carry their
preprocessing inside the graph; models from elsewhere are adapted by ``input_range``,
``mean``, ``std``, ``layout`` and ``dtype``.
"""
