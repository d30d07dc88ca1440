"""The sweep platform: thin adapters that turn lmgan's training events into Ray Tune reports,
MLflow runs and Prometheus figures. The core (lmgan.training, lmgan.nets, ...) never imports this.
"""
