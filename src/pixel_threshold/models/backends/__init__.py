"""One module per kind of model besides Keras (`models.classifier`), each importing its
runtime only when a model of its kind is loaded (`models.loading.load_classifier`)."""
