"""Smoke test of the neural Tables 1-3 function (built-in data, tiny settings)."""
import numpy as np
import pytest
import torch

from cfdkit.experiments.neural_table import PAPER, load_arrays, neural_cfd_table


@pytest.fixture(autouse=True)
def _one_thread():
    old = torch.get_num_threads(); torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def test_load_arrays_synthetic():
    Xtr, ytr, Xte, yte = load_arrays("synthetic", seed=1)
    assert Xtr.dtype == np.float64 and ytr.dtype == np.int64 and Xtr.shape[1] == Xte.shape[1]
    assert set(np.unique(ytr)) == {0, 1}


def test_neural_cfd_table_columns_and_bounds():
    df = neural_cfd_table(datasets=("synthetic",), n_test=4, budget=2, rankings=("combined", "random"),
                          epochs=20, hidden=(4, 4))
    assert list(df.ranking) == ["combined", "random"]
    assert (df.found <= df.test_cases).all() and (df.test_cases == 4).all()
    assert (df.runtime_s_per_test >= df.rank_s_per_test).all()
    assert df.paper_found.isna().all()          # no paper numbers for synthetic data
    assert sum(v[1][0] for v in PAPER.values()) == 174 and sum(v[0] for v in PAPER.values()) == 1113
