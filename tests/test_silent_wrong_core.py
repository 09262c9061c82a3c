"""Regression tests for issue 8 §3 (items 1, 2, 3, 4, 6): silently wrong answers of the linear core."""

import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.optimize import minimize as sp_minimize
from sklearn.linear_model import LogisticRegression

from cfdkit import InverseHVP, RelabelAudit
from cfdkit.linear.results import FlipSets

from conftest import make_problem


# --------------------------------------------------------------- 1. fit fingerprint
@pytest.fixture
def problem():
    return make_problem(n=300, d=6, n_test=40, seed=2)


def test_verify_refuses_result_from_refit_on_other_labels(problem):
    X, y, Xt, _ = problem
    a = RelabelAudit(l2=1.0, device="cpu").fit(X, y)
    r = a.flip_sets(Xt)
    assert isinstance(r.fingerprint, str) and r.fingerprint == a.fit_fingerprint_
    a.fit(X, 1 - y)
    with pytest.raises(ValueError, match="another fit.*Recompute it with this audit"):
        a.verify(r)
    # recomputed with this fit: accepted, and the answer is this fit's
    r2 = a.flip_sets(Xt)
    v2 = a.verify(r2)
    assert v2.fingerprint == a.fit_fingerprint_
    assert v2.flip_known.all()


def test_verify_refuses_other_n_train_without_index_error(problem):
    X, y, Xt, _ = problem
    a = RelabelAudit(l2=1.0, device="cpu").fit(X, y)
    r = a.flip_sets(Xt)
    a.fit(X[:100], y[:100])
    with pytest.raises(ValueError, match="another fit"):
        a.verify(r)


@pytest.mark.parametrize("change", ["l2", "threshold", "tol", "X", "solver"])
def test_fingerprint_changes_with_data_and_parameters(problem, change):
    X, y, Xt, _ = problem
    kw = dict(l2=1.0, threshold=0.5, tol=1e-10, solver="cholesky")
    a = RelabelAudit(device="cpu", **kw).fit(X, y)
    X2 = X.copy()
    if change == "X":
        X2[0, 0] += 1e-6
    else:
        kw[change] = {"l2": 2.0, "threshold": 0.4, "tol": 1e-9, "solver": "cg"}[change]
    b = RelabelAudit(device="cpu", **kw).fit(X2, y)
    assert a.fit_fingerprint_ != b.fit_fingerprint_
    with pytest.raises(ValueError, match="another fit"):
        b.verify(a.flip_sets(Xt))


def test_same_fit_same_fingerprint_and_removal_results_carry_it(problem):
    X, y, Xt, _ = problem
    a = RelabelAudit(l2=1.0, device="cpu").fit(X, y)
    b = RelabelAudit(l2=1.0, device="cpu").fit(X, y)
    assert a.fit_fingerprint_ == b.fit_fingerprint_
    rs = a.removal_sets(Xt, algorithm="alg2")
    assert rs.fingerprint == a.fit_fingerprint_
    b.verify(rs)  # identical fit: accepted


def test_hand_built_flipsets_refused(problem):
    X, y, Xt, _ = problem
    a = RelabelAudit(l2=1.0, device="cpu").fit(X, y)
    r = a.flip_sets(Xt)
    fake = FlipSets.from_lists(kind="relabel", method="x", threshold=0.5, prob=r.prob,
                               sets=[r.indices(i) for i in range(len(r))], deltas=[r.effects(i) for i in range(len(r))],
                               X_test=r.X_test)
    with pytest.raises(ValueError, match="another fit"):
        a.verify(fake)


# ------------------------------------------------------- 2. non-converged refits
def _separable():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 5))
    y = (X[:, 0] > 0).astype(int)
    X[:, 0] += np.where(y == 1, .5, -.5)
    return X, y, rng.normal(size=(40, 5))


def _reference_refit(X, y, idx, l2, w0):
    """Tight scipy trust-region Newton refit of the relabeled problem; returns the weights."""
    yy = y.astype(float).copy()
    yy[idx] = 1 - yy[idx]
    Xa = np.c_[X, np.ones(len(X))]
    pen = np.r_[np.ones(X.shape[1]), 0.0] * l2

    def f(w):
        z = Xa @ w
        return np.sum(np.logaddexp(0, z) - yy * z) + 0.5 * np.sum(pen * w * w)

    def g(w):
        p = 0.5 * (1 + np.tanh(0.5 * (Xa @ w)))
        return Xa.T @ (p - yy) + pen * w

    def h(w):
        p = 0.5 * (1 + np.tanh(0.5 * (Xa @ w)))
        return (Xa * (p * (1 - p))[:, None]).T @ Xa + np.diag(pen)

    res = sp_minimize(f, w0, jac=g, hess=h, method="trust-exact", options=dict(gtol=1e-9, maxiter=5000))
    assert np.linalg.norm(g(res.x)) < 1e-6
    return res.x


def test_separable_weakly_regularized_refits_converge_to_true_values():
    X, y, Xt = _separable()
    a = RelabelAudit(l2=1e-8, device="cpu").fit(X, y)
    assert a.fit_info_.converged[0]
    r = a.flip_sets(Xt)
    found = np.nonzero(r.found)[0]
    assert found.size >= 8
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no "refits stopped above tol"
        v = a.verify(r, certify=False)
        vc = a.verify(r)  # certificates: the same answers
    assert v.converged.all() and (v.grad_norm[found] <= 1e-10).all()
    np.testing.assert_array_equal(vc.flipped, v.flipped)
    w0 = np.r_[a.coef_, a.intercept_]
    for i in found:
        w = _reference_refit(X, y, r.indices(i), 1e-8, w0)
        p_ref = 1 / (1 + np.exp(-(np.r_[Xt[i], 1.0] @ w)))
        assert abs(v.new_prob[i] - p_ref) < 1e-6, (i, v.new_prob[i], p_ref)
        assert bool(v.flipped[i]) == ((p_ref > 0.5) != (r.prob[i] > 0.5))


@pytest.mark.filterwarnings("ignore:minimize:RuntimeWarning")
def test_non_converged_refits_are_unknown_everywhere(problem):
    X, y, Xt, _ = problem
    a = RelabelAudit(l2=1.0, device="cpu").fit(X, y)
    r = a.flip_sets(Xt)
    found = r.found
    assert found.sum() >= 3
    a.state_.tol = 1e-300  # refits cannot reach it: every refit ends unconverged
    with pytest.warns(RuntimeWarning, match="decided_by='undecided'"):
        v = a.verify(r, minimize=True, certify=False)
    assert not v.converged[found].any() and v.converged[~found].all()
    assert v.flipped.dtype == np.float64 and np.isnan(v.flipped[found]).all()
    assert (v.flipped[~found] == 0).all()
    s = v.summary()
    assert s["n_not_converged"] == int(found.sum()) and s["n_verified"] == 0
    assert s["flip_rate"] == 0.0  # over the converged rows only: the no-set rows, none flipped
    assert np.isnan(s["success_ratio"])
    df = v.to_frame()
    assert "estimated_converged" in df and (df["estimated_converged"].to_numpy() == v.converged).all()
    assert df["estimated_flipped"].dtype == "boolean"
    assert df.loc[found, "estimated_flipped"].isna().all() and not df.loc[~found, "estimated_flipped"].isna().any()
    assert (v.verified_size[found] == -1).all()
    # retrain_probabilities gives NaN (no answer) for the same refits
    with pytest.warns(RuntimeWarning, match="NaN"):
        p = a.retrain_probabilities(Xt[:3], [r.indices(i) if found[i] else [] for i in range(3)])
    assert np.isnan(p[found[:3]]).all() and np.isfinite(p[~found[:3]]).all()
    # with certificates (the default) the same unconverged refits still answer where a proof decides them,
    # and say so; none is reported as converged
    vc = a.verify(r)
    assert set(vc.decided_by[found]) <= {"certified", "undecided"} and (vc.decided_by[found] == "certified").any()
    assert not vc.converged[found].any()


def test_converged_verification_reports_converged_column(problem):
    X, y, Xt, _ = problem
    a = RelabelAudit(l2=1.0, device="cpu").fit(X, y)
    v = a.verify(a.flip_sets(Xt), certify=False)
    assert v.flipped.dtype == bool
    df = v.to_frame()
    assert df["estimated_converged"].all() and not df["estimated_flipped"].isna().any()
    s = v.summary()
    assert s["n_not_converged"] == 0
    assert s["flip_rate"] == pytest.approx(v.flipped.mean())


# -------------------------------------------------------------- 3. from_sklearn
@pytest.fixture
def sk_problem():
    return make_problem(n=600, d=8, seed=0)


def test_from_sklearn_accepts_matching_estimator(sk_problem):
    X, y, _, _ = sk_problem
    sk = LogisticRegression(C=0.5).fit(X, y)
    a = RelabelAudit.from_sklearn(sk, X, y, device="cpu")
    assert a.sklearn_gradient_ <= 10 * sk.tol
    np.testing.assert_allclose(a.coef_, sk.coef_[0], rtol=1e-2, atol=1e-3)


def test_from_sklearn_refuses_sample_weight(sk_problem):
    X, y, _, _ = sk_problem
    sw = np.random.default_rng(0).uniform(0.2, 2, len(y))
    sk = LogisticRegression().fit(X, y, sample_weight=sw)
    with pytest.raises(ValueError, match="sample_weight"):
        RelabelAudit.from_sklearn(sk, X, y, device="cpu")


def test_from_sklearn_refuses_other_data(sk_problem):
    X, y, _, _ = sk_problem
    X2, y2, _, _ = make_problem(n=600, d=8, seed=5)
    sk = LogisticRegression().fit(X2, y2)
    with pytest.raises(ValueError, match="other X/y"):
        RelabelAudit.from_sklearn(sk, X, y, device="cpu")


def test_from_sklearn_refuses_set_params_after_fit(sk_problem):
    X, y, _, _ = sk_problem
    sk = LogisticRegression(C=1.0).fit(X, y)
    sk.set_params(C=0.1)
    with pytest.raises(ValueError, match="set_params"):
        RelabelAudit.from_sklearn(sk, X, y, device="cpu")


# ------------------------------------------------------------ 4. feature names
@pytest.fixture
def frame_problem():
    X, y, Xt, _ = make_problem(n=300, d=4, n_test=20, seed=4)
    cols = ["a", "b", "c", "d"]
    return pd.DataFrame(X, columns=cols), y, pd.DataFrame(Xt, columns=cols)


def test_feature_names_kept_and_reordered_by_name(frame_problem):
    X, y, Xt = frame_problem
    a = RelabelAudit(device="cpu").fit(X, y)
    assert list(a.feature_names_in_) == ["a", "b", "c", "d"] and a.n_features_in_ == 4
    p = a.predict_proba(Xt)
    shuffled = Xt[["c", "a", "d", "b"]]
    np.testing.assert_array_equal(a.predict_proba(shuffled), p)
    r1, r2 = a.flip_sets(Xt), a.flip_sets(shuffled)
    np.testing.assert_array_equal(r1.size, r2.size)
    np.testing.assert_array_equal(a.scores(shuffled), a.scores(Xt))


@pytest.mark.parametrize("cols, msg", [(["a", "b", "c", "e"], "missing \\['d'\\]; unexpected \\['e'\\]"),
                                       (["a", "b", "c"], "missing"),
                                       (["a", "b", "c", "d", "x"], "unexpected")])
def test_renamed_or_missing_columns_refused(frame_problem, cols, msg):
    X, y, Xt = frame_problem
    a = RelabelAudit(device="cpu").fit(X, y)
    bad = pd.DataFrame(np.ones((3, len(cols))), columns=cols)
    with pytest.raises(ValueError, match=msg):
        a.predict_proba(bad)


def test_numpy_after_frame_fit_is_positional_with_warning(frame_problem):
    X, y, Xt = frame_problem
    a = RelabelAudit(device="cpu").fit(X, y)
    with pytest.warns(UserWarning, match="does not have valid feature names"):
        p = a.predict_proba(Xt.to_numpy())
    np.testing.assert_array_equal(p, a.predict_proba(Xt))


def test_frame_after_array_fit_warns(frame_problem):
    X, y, Xt = frame_problem
    a = RelabelAudit(device="cpu").fit(X.to_numpy(), y)
    assert not hasattr(a, "feature_names_in_")
    with pytest.warns(UserWarning, match="fitted without feature names"):
        a.predict_proba(Xt)


# ---------------------------------------------------------------- 6. solvers
def _spd(p=6, seed=0):
    A = np.random.default_rng(seed).normal(size=(p, p))
    return A @ A.T + p * np.eye(p)


def test_cholesky_refuses_non_symmetric():
    H = _spd()
    H[0, 1] += 0.5
    with pytest.raises(ValueError, match="not symmetric"):
        InverseHVP("cholesky").fit(H)


def test_round_off_asymmetry_accepted():
    H = _spd()
    H2 = H.copy()
    H2[0, 1] *= 1 + 1e-14
    x = InverseHVP("cholesky").fit(H2).solve(np.ones(6)).x.numpy()
    np.testing.assert_allclose(H @ x, np.ones(6), rtol=1e-10)


@pytest.mark.parametrize("solver", ["cholesky", "cg", "lissa", "arnoldi"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nonfinite_rhs_refused_by_every_solver(solver, bad):
    ih = InverseHVP(solver, rank=6).fit(_spd())
    b = np.ones(6)
    b[2] = bad
    with pytest.raises(ValueError, match="B contains 1 NaN or infinite"):
        ih.solve(b)
    B = torch.ones(6, 3, dtype=torch.float64)
    B[1, 1] = bad
    with pytest.raises(ValueError, match="NaN or infinite"):
        ih.solve(B)


# ------------------------------------------------------------------------ GPU (skipped without CUDA)
@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_gpu_separable_refits_and_device_index():
    X, y, Xt = _separable()
    cpu = RelabelAudit(l2=1e-8, device="cpu").fit(X, y)
    gpu = RelabelAudit(l2=1e-8, device="cuda").fit(X, y)
    vc, vg = cpu.verify(cpu.flip_sets(Xt), certify=False), gpu.verify(gpu.flip_sets(Xt), certify=False)
    assert vc.converged.all() and vg.converged.all()
    np.testing.assert_allclose(vg.new_prob, vc.new_prob, atol=1e-6, equal_nan=True)
    with pytest.raises(ValueError, match="only"):
        RelabelAudit(device=f"cuda:{torch.cuda.device_count()}").fit(X, y)
