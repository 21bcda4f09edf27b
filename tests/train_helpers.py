"""Shared pieces of the training tests (CPU and CUDA): the bundled digits as training data, a
small spatial featurizer, and the metrics log reader."""

import json

import torch
from sklearn.datasets import load_digits

from generation.train import TrainData


def digits_data() -> TrainData:
    """scikit-learn's 1,797 digits as (N, 1, 8, 8) in [-1, 1], 10 classes."""
    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32)[:, None] / 8.0 - 1.0
    return TrainData(x=x, y=torch.tensor(d.target), num_classes=10, name="digits")


def projection_featurizer():
    """A spatial random projection to 8 channels of (1, 8, 8) inputs."""
    from featsel.features import create_featurizer

    return create_featurizer("random-projection:dim=8,spatial=true", in_shape=(1, 8, 8))


def read_metrics(path) -> list[dict]:
    """The rows of a run's metrics.jsonl."""
    return [json.loads(ln) for ln in open(path)]
