import os
import pathlib

import numpy as np
import pytest
import scipy.sparse as sp

ROOT = pathlib.Path(__file__).resolve().parents[1]


def shared_data_dir():
    """The data home used by tests: CFDKIT_DATA_HOME, else ../shared/data beside the repo."""
    env = os.environ.get("CFDKIT_DATA_HOME")
    if env and pathlib.Path(env).is_dir():
        return pathlib.Path(env)
    cand = ROOT.parent / "shared" / "data"
    return cand if cand.is_dir() else None


def make_problem(n=600, d=8, n_test=40, seed=0, sparse=False, noise=0.5):
    rng = np.random.default_rng(seed)
    if sparse:
        X = sp.random(n + n_test, d, density=0.05, format="csr", random_state=seed)
        X.data[:] = 1.0
        w = rng.normal(size=d) * 2
        z = X @ w - 0.3
    else:
        X = rng.normal(size=(n + n_test, d))
        w = rng.normal(size=d)
        z = X @ w
    y = (z + noise * rng.normal(size=n + n_test) > 0).astype(np.int64)
    return X[:n], y[:n], X[n:], y[n:]


@pytest.fixture
def dense_problem():
    return make_problem()


@pytest.fixture
def sparse_problem():
    return make_problem(n=800, d=60, n_test=30, sparse=True, seed=1)


def make_neural_data(n=48, d=3, seed=0, noise=0.7):
    """A small nonlinear-enough binary problem for the neural tests: X (n, d) normal, y from two features + noise."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    y = (X[:, 0] + 0.5 * X[:, 1] + noise * rng.normal(size=n) > 0).astype(np.int64)
    return X, y


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny problems: intra-op threads only add sync cost (badly so on a loaded 2-core box)."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
