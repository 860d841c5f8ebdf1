"""The images attacked and trained on: built-in datasets and folders of class folders
(`datasets`, `folders`), ImageNet's classes and the built-in sample photos (`imagenet`)."""
