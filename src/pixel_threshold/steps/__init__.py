"""The entry points' work: train, attack, evaluate and main, each one MLflow run."""
