"""Verification by real retraining, minimization by bisection, and the removal algorithms."""
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from cfdkit import RelabelAudit, Verification
from conftest import make_problem


def sk_prob(X, y, Xq, l2, keep=None):
    if keep is not None:
        X, y = X[keep], y[keep]
    sk = LogisticRegression(C=1 / l2, tol=1e-12, max_iter=100_000, solver="newton-cholesky").fit(X, y)
    return sk.predict_proba(Xq)[:, 1]


@pytest.mark.parametrize("sparse", [False, True])
def test_verification_agrees_with_sklearn_refits(sparse):
    X, y, Xt, _ = make_problem(n=600, d=40 if sparse else 8, n_test=40, sparse=sparse, seed=6)
    l2 = 0.5
    a = RelabelAudit(l2=l2, device="cpu").fit(X, y)
    res = a.flip_sets(Xt)
    ver = a.verify(res, certify=False)
    found = np.nonzero(res.found)[0]
    assert found.size >= 5
    assert np.isnan(ver.new_prob[~res.found]).all() and not ver.flipped[~res.found].any()
    assert ver.converged[found].all() and (ver.grad_norm[found] <= 1e-10).all()
    assert (ver.decided_by[found] == "converged").all() and not ver.certified.any()
    rng = np.random.default_rng(0)
    diffs, sk = [], {}
    for i in found:
        y2 = y.copy()
        S = res.indices(i)
        y2[S] = 1 - y2[S]
        sk[i] = sk_prob(X, y2, Xt[i:i + 1], l2)[0]
    for i in rng.choice(found, min(8, found.size), replace=False):
        diffs.append(abs(sk[i] - ver.new_prob[i]))
    assert max(diffs) <= 1e-6
    # flipped is exactly "the retrained prediction is on the other side"
    np.testing.assert_array_equal(ver.flipped[found], (ver.new_prob[found] > 0.5) != (res.prob[found] > 0.5))
    # the default: refits stop once a sign certificate proves the side; the answers are scikit-learn's, and its
    # probability lies in the proven interval
    vc = a.verify(res)
    assert vc.certified[found].sum() >= found.size // 2
    assert set(vc.decided_by[found]) <= {"certified", "converged"}
    skp = np.array([sk[i] for i in found])
    np.testing.assert_array_equal(vc.flipped[found], (skp > 0.5) != (res.prob[found] > 0.5))
    c = found[vc.certified[found]]
    skc = np.array([sk[i] for i in c])
    assert ((vc.new_prob_low[c] - 1e-9 <= skc) & (skc <= vc.new_prob_high[c] + 1e-9)).all()
    assert ((vc.new_prob_low[c] <= vc.new_prob[c]) & (vc.new_prob[c] <= vc.new_prob_high[c])).all()
    assert np.isnan(vc.actual_delta[c]).all() and vc.summary()["n_certified"] == c.size


def test_predicted_vs_actual_change_reported(dense_problem):
    X, y, Xt, _ = dense_problem
    a = RelabelAudit(l2=1.0, device="cpu").fit(X, y)
    ver = a.verify(a.flip_sets(Xt), certify=False)
    f = ver.sets.found
    np.testing.assert_allclose(ver.predicted_delta[f], ver.sets.predicted_prob[f] - ver.sets.prob[f])
    np.testing.assert_allclose(ver.actual_delta[f], ver.new_prob[f] - ver.sets.prob[f])
    np.testing.assert_allclose(ver.rel_error[f], np.abs(ver.predicted_delta[f] - ver.actual_delta[f]) / np.abs(ver.actual_delta[f]))
    s = ver.summary()
    assert 0 <= s["flip_rate"] <= s["found_rate"] <= 1 and -1 <= s["pearson_delta"] <= 1
    df = ver.to_frame()
    assert {"estimated_flipped", "estimated_refit_prob", "estimated_rel_error"} <= set(df.columns)


def test_minimize_finds_boundary_prefix():
    X, y, Xt, _ = make_problem(n=500, d=6, n_test=25, seed=8)
    a = RelabelAudit(l2=1.0, device="cpu").fit(X, y)
    res = a.flip_sets(Xt)
    ver = a.verify(res, minimize=True)
    assert isinstance(ver, Verification)
    k = ver.verified_size
    checked = 0
    for i in np.nonzero(k > 0)[0][:6]:
        # re-derive the greedy order: for flipped sets it is the set itself
        order = res.indices(i) if ver.flipped[i] else None
        if order is None:
            continue
        p_k = a.retrain_probabilities(Xt[i:i + 1], [order[: k[i]]])[0]
        p_km1 = a.retrain_probabilities(Xt[i:i + 1], [order[: k[i] - 1]])[0]
        orig = res.prob[i] > 0.5
        assert (p_k > 0.5) != orig  # k flips
        assert (p_km1 > 0.5) == orig  # k-1 does not
        assert abs(p_k - ver.verified_new_prob[i]) < 1e-12
        assert k[i] <= res.size[i]
        checked += 1
    assert checked >= 3
    # sets that did not flip at |S_t| were extended along the greedy order
    assert ((k > 0) >= ver.flipped).all()


def test_removal_alg1_and_alg2(dense_problem):
    X, y, Xt, _ = dense_problem
    a = RelabelAudit(l2=1.0, device="cpu").fit(X, y)
    r1 = a.removal_sets(Xt, "alg1")
    r2 = a.removal_sets(Xt, "alg2")
    assert r1.kind == r2.kind == "remove"
    both = r1.found & r2.found
    assert both.any()
    assert (r2.size[both] <= r1.size[both]).all()  # Alg2 only shrinks
    for i in np.nonzero(both)[0]:
        assert set(r2.indices(i)) <= set(r1.indices(i))
    # verification removes exactly the set Alg2 chose
    v2 = a.verify(r2)
    i = int(np.nonzero(both)[0][0])
    keep = np.ones(len(y), bool)
    keep[r2.indices(i)] = False
    assert abs(sk_prob(X, y, Xt[i:i + 1], 1.0, keep)[0] - v2.new_prob[i]) < 1e-6


def test_relabel_sets_smaller_than_removal_sets(dense_problem):
    """The paper's Table 7 direction: relabeling needs fewer points than removal (mean over shared points)."""
    X, y, Xt, _ = dense_problem
    a = RelabelAudit(l2=1.0, device="cpu").fit(X, y)
    rel, rem = a.flip_sets(Xt), a.removal_sets(Xt, "alg1")
    both = rel.found & rem.found
    assert both.sum() >= 3
    assert rel.size[both].mean() < rem.size[both].mean()


def test_retrain_probabilities_checks_sets(dense_problem):
    X, y, Xt, _ = dense_problem
    a = RelabelAudit(l2=1.0, device="cpu").fit(X, y)
    with pytest.raises(ValueError, match="one index set per test row"):
        a.retrain_probabilities(Xt[:2], [[0]])
    with pytest.raises(ValueError, match="outside"):
        a.retrain_probabilities(Xt[:1], [[len(y)]])
    with pytest.raises(ValueError, match="repeats"):
        a.retrain_probabilities(Xt[:1], [[1, 1]])
    out = a.retrain_probabilities(Xt[:2], [[], [3]])
    assert out[0] == a.positive_proba(Xt[:1])[0]


def test_verify_rejects_foreign_results(dense_problem):
    X, y, Xt, _ = dense_problem
    a = RelabelAudit(l2=1.0, device="cpu").fit(X, y)
    b = RelabelAudit(l2=1.0, device="cpu").fit(X[:, :3], y)
    with pytest.raises(ValueError, match="not produced by this audit"):
        a.verify(b.flip_sets(Xt[:, :3]))
    with pytest.raises(TypeError, match="FlipSets"):
        a.verify({"size": 1})
