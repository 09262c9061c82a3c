"""Smoke test of the neural Tables 1-3 function (built-in data, tiny settings)."""
import numpy as np
import pytest
import torch

from cfdkit.studies.neural_table import PAPER, load_arrays, neural_cfd_table


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
                          hidden=(4, 4), max_train=200, placebo_draws=4)
    assert list(df.ranking) == ["combined", "random"]
    assert (df.findings <= df.found).all() and (df.retrain_not_converged == 0).all()
    for c in ("placebo_flip_rate_random_k1", "placebo_flip_rate_random_k2", "placebo_flip_rate_seed"):
        assert ((df[c] >= 0) & (df[c] <= 1)).all()
    assert ((df.mean_specificity >= 0) & (df.mean_specificity <= 1) | (df.found == 0)).all()
    assert (df.found <= df.test_cases).all() and (df.test_cases == 4).all()
    assert (df.runtime_s_per_test >= df.rank_s_per_test).all()
    assert df.paper_found.isna().all()          # no paper numbers for synthetic data
    assert sum(v[1][0] for v in PAPER.values()) == 174 and sum(v[0] for v in PAPER.values()) == 1113


def test_subsample_train_is_seeded_and_stratified():
    from cfdkit.studies.neural_table import subsample_train
    X = np.arange(1000, dtype=float)[:, None]; y = (np.arange(1000) % 4 == 0).astype(np.int64)   # 25 % positives
    Xs, ys, idx = subsample_train(X, y, 200, seed=3)
    assert len(ys) == 200 and ys.sum() == 50 and np.all(np.diff(idx) > 0)
    assert np.array_equal(idx, subsample_train(X, y, 200, seed=3)[2])
    assert len(subsample_train(X, y, None)[1]) == 1000 and len(subsample_train(X, y, 5000)[1]) == 1000


def test_table_markdown_and_subsample_columns():
    from cfdkit.studies.neural_table import table_markdown
    df = neural_cfd_table(datasets=("synthetic",), n_test=3, budget=2, rankings=("combined", "random"),
                          hidden=(3, 3), max_train={"synthetic": 100}, placebo_draws=2)
    assert (df.n_train == 100).all() and (df.n_train_full == 800).all() and df.subsampled.all()   # synthetic = make_synthetic (800 rows), one meaning since issue 9
    md = table_markdown(df)
    assert "| synthetic | 100 / 800 (sub) | 3 |" in md and "**total**" in md
    assert "beat their placebo" in md and "placebo seed" in md


def test_reproduction_section_paper_and_placebo_columns_and_ordering_sentence():
    from cfdkit.studies.neural_table import ordering_sentence, reproduction_section
    df = neural_cfd_table(datasets=("synthetic",), n_test=3, budget=2, rankings=("combined", "l2_distance", "random"),
                          hidden=(3, 3), max_train=100, placebo_draws=2)
    df = df.assign(dataset="german")                     # a data set with paper numbers
    df.loc[:, "found"] = [3, 3, 2]
    df.loc[:, "findings"] = [3, 2, 0]
    md = reproduction_section(df, {"command": "CMD", "seconds": {"german": 90.0}})
    assert md.startswith("## Neural networks") and "`CMD`" in md and "german 1.5 min" in md
    assert "| german | 3 / 3" in md and "38 / 17 / 15 (182)" in md          # findings / found beside the paper's
    assert "placebo random_k1" in md and "placebo seed" in md
    assert "**holds**" in md and "combined / l2_distance = 1.50" in md
    df.loc[:, "findings"] = [1, 2, 0]
    s = ordering_sentence(df)
    assert "**does not hold**" in s and "combined 1, l2_distance 2, random 0" in s and "`l2_distance` (2)" in s
    assert "cannot be checked" in ordering_sentence(df[df.ranking != "random"])
