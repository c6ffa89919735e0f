"""Shared fixtures: one small Loan sample and one quickly trained model per test session."""

import os
import pathlib
import shutil

import pytest

import carma

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def loan():
    df, graph = carma.simulate("loan", n=1500, seed=3)
    return df, graph


@pytest.fixture(scope="session")
def model(loan):
    df, graph = loan
    return carma.fit(df, graph, seed=5, epochs_scale=0.02, progress=False)


@pytest.fixture(scope="session")
def carma_cli():
    """The `carma` command built by the test script (CARMA_CLI), or one on PATH."""
    path = os.environ.get("CARMA_CLI") or shutil.which("carma")
    for candidate in [path, ROOT / "target" / "release" / "carma", ROOT / "target" / "debug" / "carma"]:
        if candidate and pathlib.Path(candidate).is_file():
            return str(candidate)
    pytest.skip("the carma command is not built (cargo build --release -p carma-cli)")
