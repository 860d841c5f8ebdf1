"""The entry points' work: train, attack, evaluate, main and compare, each one MLflow
run, with what only they use (the checks before work, resuming, Ray sharding, the
attack's pictures, compare's legends). The machinery they share is `pixel_threshold.runs`."""
