from __future__ import annotations

import os
import sys

import pytest


@pytest.fixture(scope="session")
def sample_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    from trainer import sample_data

    out = str(tmp_path_factory.mktemp("sample"))
    sample_data.write_splits(out, rows=6000, seed=3)
    return out


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory, sample_dir: str) -> dict:
    """One small real training run shared by the tests that only need a model."""
    from trainer import train

    out = str(tmp_path_factory.mktemp("trained"))
    cfg = train.TrainConfig(
        train_data_paths=os.path.join(sample_dir, "train.csv"),
        eval_data_paths=os.path.join(sample_dir, "valid.csv"),
        output_dir=out,
        train_steps=400,
        checkpoint_every=200,
    )
    return train.train_and_evaluate(cfg)


@pytest.fixture
def python() -> str:
    return sys.executable
