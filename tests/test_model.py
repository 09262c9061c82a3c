"""The logistic-regression fit: same optimum as scikit-learn, every input type."""
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from sklearn.linear_model import LogisticRegression

from cfdkit import RelabelAudit
from conftest import make_problem


def sk_fit(X, y, l2):
    return LogisticRegression(C=1.0 / l2, tol=1e-12, max_iter=100_000, solver="newton-cholesky").fit(X, y)


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("l2", [0.1, 10.0])
def test_fit_matches_sklearn(sparse, l2):
    X, y, Xt, _ = make_problem(sparse=sparse, n=700, d=30)
    a = RelabelAudit(l2=l2, device="cpu").fit(X, y)
    sk = sk_fit(X, y, l2)
    assert a.fit_info_.converged[0]
    assert a.fit_info_.grad_norm[0] <= 1e-10
    np.testing.assert_allclose(a.coef_, sk.coef_[0], atol=1e-8, rtol=0)
    assert abs(a.intercept_ - sk.intercept_[0]) < 1e-8
    np.testing.assert_allclose(a.predict_proba(Xt), sk.predict_proba(Xt), atol=1e-10)


def test_sparse_input_stays_sparse(sparse_problem):
    X, y, Xt, _ = sparse_problem
    a = RelabelAudit(l2=1.0, device="cpu").fit(X, y)
    assert a.state_.train.X.layout == torch.sparse_csr


@pytest.mark.parametrize("kind", ["numpy", "pandas", "torch", "torch_sparse", "list"])
def test_input_types_agree(kind, dense_problem):
    X, y, Xt, _ = dense_problem
    conv = {
        "numpy": lambda A: A,
        "pandas": lambda A: pd.DataFrame(A, columns=[f"f{i}" for i in range(A.shape[1])]),
        "torch": lambda A: torch.tensor(A),
        "torch_sparse": lambda A: torch.tensor(A).to_sparse_csr(),
        "list": lambda A: A.tolist(),
    }[kind]
    ref = RelabelAudit(l2=1.0, device="cpu").fit(X, y)
    a = RelabelAudit(l2=1.0, device="cpu").fit(conv(X), pd.Series(y) if kind == "pandas" else y)
    np.testing.assert_allclose(a.coef_, ref.coef_, atol=1e-10)
    np.testing.assert_array_equal(a.flip_sets(conv(Xt)).size, ref.flip_sets(Xt).size)


def test_from_sklearn_uses_C_and_reaches_optimum(dense_problem):
    X, y, Xt, _ = dense_problem
    sk = LogisticRegression(C=0.5).fit(X, y)  # default tol: only near the optimum
    a = RelabelAudit.from_sklearn(sk, X, y, device="cpu")
    assert a.l2 == pytest.approx(2.0)
    ref = sk_fit(X, y, 2.0)
    np.testing.assert_allclose(a.coef_, ref.coef_[0], atol=1e-8)


@pytest.mark.parametrize("kw, msg", [
    (dict(l1_ratio=1.0, solver="saga"), "L2"),
    (dict(solver="liblinear"), "liblinear"),
    (dict(class_weight="balanced"), "class_weight"),
    (dict(fit_intercept=False), "intercept"),
])
def test_from_sklearn_refuses_other_objectives(kw, msg, dense_problem):
    X, y, _, _ = dense_problem
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sk = LogisticRegression(max_iter=2000, **kw).fit(X, y)
    with pytest.raises(ValueError, match=msg):
        RelabelAudit.from_sklearn(sk, X, y)


def test_from_sklearn_needs_fitted_estimator(dense_problem):
    X, y, _, _ = dense_problem
    with pytest.raises(ValueError, match="not fitted"):
        RelabelAudit.from_sklearn(LogisticRegression(), X, y)
    with pytest.raises(TypeError, match="LogisticRegression"):
        RelabelAudit.from_sklearn(object(), X, y)


# the CuPy-through-DLPack test is tests/test_gpu.py::test_cupy_in_zero_copy (marked gpu)
