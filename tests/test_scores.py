"""Every score against a plain numpy transcription of its formula; IP-relabel against real refits."""
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from cfdkit import METHODS, RelabelAudit
from conftest import make_problem


@pytest.fixture(scope="module")
def fitted():
    X, y, Xt, yt = make_problem(n=300, d=6, n_test=12, seed=5)
    a = RelabelAudit(l2=2.0, device="cpu").fit(X, y)
    Xa, Xta = np.c_[X, np.ones(len(X))], np.c_[Xt, np.ones(len(Xt))]
    w = np.r_[a.coef_, a.intercept_]
    s, st = 1 / (1 + np.exp(-Xa @ w)), 1 / (1 + np.exp(-Xta @ w))
    H = Xa.T @ (Xa * (s * (1 - s))[:, None]) + np.diag(np.r_[np.full(6, 2.0), 0.0])
    Hi = np.linalg.inv(H)
    return dict(a=a, X=X, y=y, Xt=Xt, yt=yt, Xa=Xa, Xta=Xta, s=s, st=st, Hi=Hi, H=H)


def reference(method, f, yt):
    Xa, Xta, s, st, Hi, y = f["Xa"], f["Xta"], f["s"], f["st"], f["Hi"], f["y"]
    K = Xta @ Hi @ Xa.T
    gt, gi = (st - yt)[:, None] * Xta, (s - y)[:, None] * Xa
    if method == "ip_relabel":
        return np.array([[(st[t] * (1 - st[t]) * Xta[t]) @ (-Hi @ ((2 * y[i] - 1) * Xa[i])) for i in range(len(y))]
                         for t in range(len(st))])
    if method == "ip_remove":
        return (st * (1 - st))[:, None] * K * (s - y)[None, :]
    if method == "influence":
        return -gt @ Hi @ gi.T
    if method == "relatif":
        w, V = np.linalg.eigh(Hi)
        Hmh = V @ np.diag(np.sqrt(w)) @ V.T  # H^{-1/2}
        a, b = gt @ Hmh, gi @ Hmh
        return (a @ b.T) / np.linalg.norm(a, axis=1)[:, None] / np.linalg.norm(b, axis=1)[None, :]
    if method == "grad_dot":
        return gt @ gi.T
    if method == "grad_cos":
        return (gt @ gi.T) / np.linalg.norm(gt, axis=1)[:, None] / np.linalg.norm(gi, axis=1)[None, :]


@pytest.mark.parametrize("method", [m for m in METHODS if m != "random"])
def test_scores_match_formula(fitted, method):
    f = fitted
    got = f["a"].scores(f["Xt"], method=method, y_test=f["yt"])
    assert got.shape == (len(f["Xt"]), len(f["X"])) and got.dtype == np.float64
    np.testing.assert_allclose(got, reference(method, f, f["yt"]), rtol=1e-7, atol=1e-10)


def test_default_test_label_is_prediction(fitted):
    f = fitted
    pred = (f["st"] > 0.5).astype(int)
    np.testing.assert_allclose(f["a"].scores(f["Xt"], "influence"), reference("influence", f, pred), atol=1e-10)


def test_random_scores_seeded(fitted):
    f = fitted
    r1 = f["a"].scores(f["Xt"], "random")
    r2 = f["a"].scores(f["Xt"], "random")
    np.testing.assert_array_equal(r1, r2)
    assert 0 <= r1.min() and r1.max() < 1 and r1.std() > 0.2


def test_ip_relabel_predicts_single_relabel_refits():
    """Well-conditioned problem: predicted vs actual Delta prob of single relabels, Pearson >= 0.99."""
    X, y, Xt, _ = make_problem(n=400, d=5, n_test=3, seed=11, noise=1.0)
    a = RelabelAudit(l2=1.0, device="cpu").fit(X, y)
    rng = np.random.default_rng(0)
    idx = rng.choice(len(y), 80, replace=False)
    for t in range(3):
        pred = a.scores(Xt[t:t + 1])[0, idx]
        p0 = a.positive_proba(Xt[t:t + 1])[0]
        new = a.retrain_probabilities(np.repeat(Xt[t:t + 1], len(idx), 0), [[i] for i in idx])
        actual = new - p0
        assert np.corrcoef(pred, actual)[0, 1] >= 0.99
        # and the sign is right every time the change is not negligible
        big = np.abs(actual) > 1e-4
        assert np.all(np.sign(pred[big]) == np.sign(actual[big]))


def test_ip_remove_predicts_single_removals():
    X, y, Xt, _ = make_problem(n=400, d=5, n_test=1, seed=12, noise=1.0)
    a = RelabelAudit(l2=1.0, device="cpu").fit(X, y)
    idx = np.arange(0, 400, 7)
    pred = a.scores(Xt, "ip_remove")[0, idx]
    p0 = a.positive_proba(Xt)[0]
    new = a.retrain_probabilities(np.repeat(Xt, len(idx), 0), [[i] for i in idx], kind="remove")
    for j, i in enumerate(idx[:5]):
        keep = np.ones(len(y), bool)
        keep[i] = False
        sk = LogisticRegression(C=1.0, tol=1e-12, max_iter=10000, solver="newton-cholesky").fit(X[keep], y[keep])
        assert abs(sk.predict_proba(Xt)[0, 1] - new[j]) < 1e-8
    assert np.corrcoef(pred, new - p0)[0, 1] >= 0.99
