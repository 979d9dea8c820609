"""Training: synthetic data, data sources, prompting, losses and the training loop."""
