"""The project's own reference models and data: architectures, the synthetic set, training, the demo."""
