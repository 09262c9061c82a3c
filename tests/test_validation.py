"""Bad input gets a clear error naming the argument and the fix."""
import numpy as np
import pytest
import scipy.sparse as sp

from cfdkit import RelabelAudit


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 3))
    y = (X[:, 0] > 0).astype(int)
    return X, y


def fit(X, y, **kw):
    kw.setdefault("device", "cpu")
    return RelabelAudit(**kw).fit(X, y)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nonfinite_features(data, bad):
    X, y = data
    X = X.copy()
    X[3, 1] = bad
    with pytest.raises(ValueError, match="X_train contains 1 NaN or infinite"):
        fit(X, y)


def test_nonfinite_sparse_features(data):
    X, y = data
    Xs = sp.csr_matrix(X)
    Xs.data[0] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite"):
        fit(Xs, y)


def test_nonfinite_test_features(data):
    X, y = data
    a = fit(X, y)
    Xt = X[:4].copy()
    Xt[0, 0] = np.nan
    with pytest.raises(ValueError, match="X_test contains"):
        a.flip_sets(Xt)


@pytest.mark.parametrize("labels, msg", [
    (lambda y: y * 2, "only 0 and 1"),
    (lambda y: y - 1, "only 0 and 1"),
    (lambda y: np.where(y == 1, "a", "b"), "binary numeric"),
    (lambda y: np.zeros_like(y), "only class 0"),
    (lambda y: np.ones_like(y), "only class 1"),
    (lambda y: np.where(y == 1, np.nan, 0.0), "NaN"),
    (lambda y: y[:-1], "has 49 labels but X has 50 rows"),
    (lambda y: y.reshape(5, 10), "1-D"),
])
def test_bad_labels(data, labels, msg):
    X, y = data
    with pytest.raises(ValueError, match=msg):
        fit(X, labels(y))


def test_float_and_bool_labels_accepted(data):
    X, y = data
    a = fit(X, y.astype(float))
    b = fit(X, y.astype(bool))
    np.testing.assert_allclose(a.coef_, b.coef_)


def test_feature_count_mismatch(data):
    X, y = data
    a = fit(X, y)
    with pytest.raises(ValueError, match="has 2 features but the audit was fitted with 3"):
        a.flip_sets(X[:, :2])


@pytest.mark.parametrize("tau", [0, 1, -0.1, 1.5, np.nan])
def test_threshold_outside_unit_interval(data, tau):
    X, y = data
    with pytest.raises(ValueError, match="threshold must lie strictly between 0 and 1"):
        fit(X, y, threshold=tau)


def test_threshold_type(data):
    X, y = data
    with pytest.raises(TypeError, match="threshold"):
        fit(X, y, threshold="0.5")


@pytest.mark.parametrize("l2", [0, -1.0, np.inf])
def test_nonpositive_l2(data, l2):
    X, y = data
    with pytest.raises(ValueError, match="l2 must be > 0"):
        fit(X, y, l2=l2)


def test_empty_inputs(data):
    X, y = data
    with pytest.raises(ValueError, match="empty"):
        fit(np.empty((0, 3)), np.empty(0))
    with pytest.raises(ValueError, match="empty"):
        fit(np.empty((50, 0)), y)
    a = fit(X, y)
    with pytest.raises(ValueError, match="X_test is empty"):
        a.flip_sets(np.empty((0, 3)))


def test_one_dimensional_and_text_features(data):
    X, y = data
    with pytest.raises(ValueError, match="1-D"):
        fit(X[:, 0], y)
    with pytest.raises(TypeError, match="texts"):
        fit(["a text"] * 50, y)
    with pytest.raises(TypeError, match="None"):
        fit(None, y)


def test_unknown_solver_and_method(data):
    X, y = data
    with pytest.raises(ValueError, match="solver='qr' is not known; choose one of 'cholesky', 'cg', 'lissa', 'arnoldi'"):
        fit(X, y, solver="qr")
    a = fit(X, y)
    with pytest.raises(ValueError, match="method='tracin' is not known"):
        a.scores(X[:2], method="tracin")
    with pytest.raises(ValueError, match="algorithm"):
        a.removal_sets(X[:2], algorithm="alg3")


def test_not_fitted(data):
    X, _ = data
    with pytest.raises(RuntimeError, match="not fitted"):
        RelabelAudit().flip_sets(X)


def test_bad_device_and_budget(data):
    X, y = data
    import torch
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA device"):
            fit(X, y, device="cuda")
    with pytest.raises(ValueError, match="memory_budget"):
        fit(X, y, memory_budget="lots")


def test_bad_y_test(data):
    X, y = data
    a = fit(X, y)
    with pytest.raises(ValueError, match="y_test"):
        a.scores(X[:3], "influence", y_test=[0, 2, 1])
    with pytest.raises(ValueError, match="y_test"):
        a.scores(X[:3], "influence", y_test=[0, 1])
