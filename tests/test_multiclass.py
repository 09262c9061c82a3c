"""More than two classes (issue 15 part 3): multinomial fit, softmax IP-relabel, Algorithm 1, refits, minimal sets.

References are independent: scikit-learn's LogisticRegression (newton-cholesky, multinomial loss) for the fit and
every refit, an autograd Hessian with a pseudo-inverse for the first-order effects, a plain-Python greedy for
Algorithm 1, and exhaustive enumeration of every relabeling for the minimal sets.
"""

import functools

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from cfdkit import RelabelAudit
from cfdkit.core.parallel import block_runs
from cfdkit.linear import multiclass as mc
from cfdkit.linear.oracle import exhaustive_multiclass
from cfdkit.linear.binomial import BinomialEngine
from cfdkit.linear.multiclass import MultinomialEngine
from cfdkit.linear.results import FlipSets, RaggedSets


def make_k(n=150, d=4, K=3, n_test=20, seed=0, sep=1.5):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(K, d)) * sep
    y = rng.integers(0, K, n)
    y[:K] = np.arange(K)  # every class present
    X = centers[y] + rng.normal(size=(n, d))
    Xt = centers[rng.integers(0, K, n_test)] + 1.3 * rng.normal(size=(n_test, d))
    return X, y, Xt


def sk_fit(X, y, C=1.0):
    return LogisticRegression(C=C, tol=1e-15, max_iter=1000, solver="newton-cholesky").fit(X, y)


def relabeled(y, idx, lab):
    y2 = np.array(y, copy=True)
    y2[np.asarray(idx)] = np.asarray(lab)
    return y2


@functools.lru_cache(maxsize=None)
def fitted(K=3, seed=0):
    X, y, Xt = make_k(K=K, seed=seed)
    return X, y, Xt, RelabelAudit(l2=1.0, device="cpu").fit(X, y)


# ------------------------------------------------------------------------------------------- fit
@pytest.mark.parametrize("K, C, seed", [(3, 1.0, 0), (4, 0.1, 1), (5, 10.0, 2)])
def test_fit_matches_sklearn(K, C, seed):
    X, y, Xt = make_k(K=K, seed=seed)
    a = RelabelAudit(l2=1.0 / C, device="cpu").fit(X, y)
    m = sk_fit(X, y, C)
    assert a.fit_info_.converged[0]
    assert a.coef_.shape == (K, X.shape[1]) and a.intercept_.shape == (K,)
    np.testing.assert_allclose(a.coef_, m.coef_, atol=1e-9, rtol=1e-9)
    np.testing.assert_allclose(a.intercept_, m.intercept_, atol=1e-9, rtol=1e-9)
    np.testing.assert_allclose(a.predict_proba(Xt), m.predict_proba(Xt), atol=1e-10)
    np.testing.assert_array_equal(a.classes_, m.classes_)


def test_string_classes_mapped_and_mapped_back():
    X, y, Xt = make_k(K=3, seed=3)
    names = np.array(["cat", "bird", "dog"])  # sorted: bird, cat, dog
    ys = names[y]
    a = RelabelAudit(device="cpu").fit(X, ys)
    m = sk_fit(X, ys)
    np.testing.assert_array_equal(a.classes_, ["bird", "cat", "dog"])
    np.testing.assert_allclose(a.predict_proba(Xt), m.predict_proba(Xt), atol=1e-10)
    fs = a.flip_sets(Xt, target_class="dog")
    i = int(np.nonzero(fs.found)[0][0])
    assert fs.new_labels(i).dtype == np.int64 and fs.indices(i).dtype == np.int64
    assert len(fs.new_labels(i)) == len(fs.indices(i))
    np.testing.assert_array_equal(fs.new_classes(i), a.classes_[fs.new_labels(i)])
    assert set(fs.new_classes(i)) <= {"bird", "cat", "dog"}
    # each new class differs from the point's old class
    assert np.all(fs.new_classes(i) != ys[fs.indices(i)])
    df = fs.to_frame()
    assert set(df["predicted_class"]) <= {"bird", "cat", "dog"}
    # integer codes of the same data give the same sets
    b = RelabelAudit(device="cpu").fit(X, np.searchsorted(a.classes_, ys))
    gb = b.flip_sets(Xt, target_class=2)
    np.testing.assert_array_equal(gb.flat_indices, fs.flat_indices)
    np.testing.assert_array_equal(gb.flat_new_labels, fs.flat_new_labels)


def test_binary_labels_keep_the_binary_path():
    X, y, Xt = make_k(K=2, seed=4)
    a = RelabelAudit(device="cpu").fit(X, y)
    assert isinstance(a.engine_, BinomialEngine) and np.ndim(a.coef_) == 1
    assert a.classes_.tolist() == [0, 1] and a.n_classes_ == 2 and a.predict_proba(Xt).shape == (len(Xt), 2)
    assert isinstance(a.flip_sets(Xt), FlipSets)
    # refitting a K-class audit on binary labels drops the K-class state
    X3, y3, _ = make_k(K=3, seed=4)
    a.fit(X3, y3)
    assert a.n_classes_ == 3 and isinstance(a.engine_, MultinomialEngine)
    a.fit(X, y)
    assert a.classes_.tolist() == [0, 1] and isinstance(a.engine_, BinomialEngine) and np.ndim(a.coef_) == 1



def test_binary_sets_are_the_two_class_case():
    """One result family: every set result is RaggedSets, and a binary relabel's new label is 1 - y."""
    X, y, Xt = make_k(K=2, seed=4)
    a = RelabelAudit(device="cpu").fit(X, y)
    fs, ms = a.flip_sets(Xt), a.minimal_sets(Xt[:4])
    assert fs.found.any() and ms.found.any()
    for res in (fs, ms):
        assert isinstance(res, RaggedSets)
        for t in range(len(res)):
            np.testing.assert_array_equal(res.new_labels(t), 1 - y[res.indices(t)])
    with pytest.raises(ValueError, match="no new labels"):
        a.removal_sets(Xt).new_labels(0)
    X3, y3, Xt3 = make_k(K=3, seed=4)
    b = RelabelAudit(device="cpu").fit(X3, y3)
    assert isinstance(b.flip_sets(Xt3), RaggedSets) and isinstance(b.minimal_sets(Xt3[:2]), RaggedSets)



def test_n_jobs_never_changes_a_k_class_result():
    """flip_sets and verify run whole score blocks / refit batches on joblib workers: the same bits."""
    from joblib import parallel_backend

    X, y, Xt = make_k(n=150, K=3, n_test=20, seed=2)
    a = RelabelAudit(l2=1.0, device="cpu", memory_budget=150_000).fit(X, y)
    assert a.engine_.block_rows(len(Xt)) < len(Xt) // 2  # several score blocks
    one = a.flip_sets(Xt)
    v1 = a.verify(one)
    assert one.found.sum() >= 6
    with parallel_backend("threading"):
        assert len(block_runs(len(Xt), a.engine_.block_rows(len(Xt)), 2)) == 2  # two workers, two runs of blocks
        two = a.flip_sets(Xt, n_jobs=2)
        v2 = a.verify(two, n_jobs=2)
    for f in ("size", "offsets", "flat_indices", "flat_new_labels", "flat_effects", "aimed_class", "logits"):
        np.testing.assert_array_equal(getattr(one, f), getattr(two, f), err_msg=f)
    for f in ("flipped", "new_prob", "new_label", "grad_norm", "converged", "actual_delta"):
        np.testing.assert_array_equal(getattr(v1, f), getattr(v2, f), err_msg=f)


# ---------------------------------------------------------------------------- first-order effects
def test_effects_equal_pseudo_inverse_of_the_gauge_free_hessian():
    """E[t, i, c'] = -J_t H^+ Delta g with H the autograd Hessian of sum L + l2/2 ||W_w||^2 (singular)."""
    X, y, Xt, a = fitted()
    st = a.state_
    K, p = st.K, st.p
    Xa = st.X
    yt = torch.as_tensor(y)

    def R(theta):
        W = theta.reshape(K, p)
        Z = Xa @ W.T
        return (torch.logsumexp(Z, 1) - Z[torch.arange(len(y)), yt]).sum() + 0.5 * st.l2 * (W[:, :-1] ** 2).sum()

    H = torch.autograd.functional.hessian(R, st.W.reshape(-1).clone())
    assert torch.linalg.matrix_rank(H) == K * p - 1  # the gauge direction only
    Hp = torch.linalg.pinv(H, hermitian=True, rtol=1e-12)
    Xd = torch.as_tensor(np.c_[Xt[:4], np.ones(4)])
    E = mc.relabel_effects(st, Xd).numpy()
    for i in (0, 7, 33):
        for c in range(K):
            dg = torch.zeros(K, p, dtype=torch.float64)
            dg[y[i]] += Xa[i]
            dg[c] -= Xa[i]
            dtheta = -(Hp @ dg.reshape(-1)).reshape(K, p)
            dz = (Xd @ dtheta.T).numpy()
            np.testing.assert_allclose(E[:, i, c], dz, atol=1e-9 * max(1, np.abs(dz).max()))
    # no relabel, no change
    assert np.all(E[:, np.arange(len(y)), :, :][:, np.arange(len(y)), y] == 0)


def test_effects_are_the_derivative_of_the_refit():
    """Tile the data r times (l2 * r: same optimum): one relabel is a 1/r change, and r * (exact refit's logit
    change) -> E (first order) with an error that shrinks like 1/r."""
    X, y, Xt, a = fitted()
    Xd = torch.as_tensor(np.c_[Xt[:3], np.ones(3)])
    E = mc.relabel_effects(a.state_, Xd)
    i, c = 11, (y[11] + 1) % 3
    errs = []
    for r in (2, 16):
        ar = RelabelAudit(l2=1.0 * r, device="cpu").fit(np.tile(X, (r, 1)), np.tile(y, r))
        st = ar.state_
        np.testing.assert_allclose(st.W.numpy(), a.state_.W.numpy(), atol=1e-8)
        np.testing.assert_allclose(r * mc.relabel_effects(st, Xd)[:, i, c].numpy(), E[:, i, c].numpy(), atol=1e-8)
        W, info = mc.refit_relabeled(st, [(np.array([i]), np.array([c]))])
        assert info.converged.all()
        dz = r * (Xd @ W[0].T - Xd @ st.W.T).numpy()
        errs.append(np.abs(dz - E[:, i, c].numpy()).max() / np.abs(E[:, i, c].numpy()).max())
    assert errs[1] < errs[0] / 4 and errs[1] < 0.05, errs


# ----------------------------------------------------------------------------------- Algorithm 1
def naive_any(E, z, y, K):
    ch = int(np.argmax(z))
    best = None
    for k in range(K):
        if k == ch:
            continue
        ben = E[:, :, k] - E[:, :, ch]
        ben[np.arange(len(y)), y] = -np.inf
        lab = ben.argmax(1)
        b = ben.max(1)
        order = sorted([i for i in range(len(y)) if b[i] > 0], key=lambda i: (-b[i], i))
        total = 0.0
        for s, i in enumerate(order, 1):
            total += b[i]
            if total > z[ch] - z[k]:
                over = total - (z[ch] - z[k])
                if best is None or s < best[0] or (s == best[0] and over > best[1]):
                    best = (s, over, k, order[:s], lab[order[:s]])
                break
    return best


def test_greedy_any_matches_a_plain_python_greedy():
    X, y, Xt, a = fitted()
    fs = a.flip_sets(Xt)
    st = a.state_
    E = mc.relabel_effects(st, torch.as_tensor(np.c_[Xt, np.ones(len(Xt))])).numpy()
    assert fs.found.any()
    for t in range(len(Xt)):
        ref = naive_any(E[t], fs.logits[t], y, 3)
        if ref is None:
            assert fs.size[t] == 0
            continue
        np.testing.assert_array_equal(fs.indices(t), ref[3])
        np.testing.assert_array_equal(fs.new_labels(t), ref[4])
        assert fs.aimed_class[t] == ref[2]
        # the estimated logits put the aimed class above the predicted one
        pl = fs.predicted_logits[t]
        assert pl[fs.aimed_class[t]] > pl[fs.predicted_label[t]]
        assert fs.estimated_label[t] != fs.predicted_label[t]
        np.testing.assert_allclose(fs.effects(t), E[t, fs.indices(t), fs.new_labels(t)])


def test_greedy_target_reaches_the_target_by_estimate():
    X, y, Xt, a = fitted()
    fs = a.flip_sets(Xt, target_class=1)
    pred = fs.predicted_label
    assert np.all(fs.size[pred == 1] == 0)
    f = fs.found
    assert f.any()
    assert np.all(fs.estimated_label[f] == 1)
    assert np.all(fs.aimed_class[f] == 1)
    for t in np.nonzero(f)[0]:
        assert np.all(fs.new_labels(t) != y[fs.indices(t)])
        assert np.unique(fs.indices(t)).size == fs.size[t]
        # dropping the last point leaves the target not yet on top (the greedy stops at the first success)
        pl = fs.logits[t] + fs.effects(t)[:-1].sum(0)
        assert np.argmax(pl) != 1 or fs.size[t] == 1 and np.argmax(fs.logits[t]) == 1


def test_same_seed_same_sets():
    X, y, Xt = make_k(K=4, seed=5)
    r1 = RelabelAudit(device="cpu").fit(X, y).flip_sets(Xt)
    r2 = RelabelAudit(device="cpu").fit(X, y).flip_sets(Xt)
    np.testing.assert_array_equal(r1.flat_indices, r2.flat_indices)
    np.testing.assert_array_equal(r1.flat_new_labels, r2.flat_new_labels)
    assert np.array_equal(r1.flat_effects, r2.flat_effects)


# -------------------------------------------------------------------------------------- refits
def test_verify_matches_sklearn_refits():
    X, y, Xt, a = fitted()
    for target in (None, 0):
        fs = a.flip_sets(Xt, target_class=target)
        v = a.verify(fs)
        assert v.converged.all()
        rows = np.nonzero(fs.found)[0][:6]
        assert rows.size
        for t in rows:
            m = sk_fit(X, relabeled(y, fs.indices(t), fs.new_labels(t)))
            pr = m.predict_proba(Xt[t:t + 1])[0]
            np.testing.assert_allclose(v.new_prob[t], pr, atol=1e-9)
            new = int(np.argmax(pr))
            want = new != fs.predicted_label[t] if target is None else new == target
            assert bool(v.flipped[t]) == want
        s = v.summary()
        assert 0 <= s["flip_rate"] <= s["found_rate"] <= 1


def test_retrain_probabilities_with_new_labels():
    X, y, Xt, a = fitted()
    sets = [np.array([2, 5]), np.array([], dtype=np.int64), np.array([9])]
    labs = [np.array([(y[2] + 1) % 3, (y[5] + 2) % 3]), np.array([], dtype=np.int64), np.array([(y[9] + 1) % 3])]
    P = a.retrain_probabilities(Xt[:3], sets, new_labels=labs)
    assert P.shape == (3, 3)
    for t in (0, 2):
        m = sk_fit(X, relabeled(y, sets[t], labs[t]))
        np.testing.assert_allclose(P[t], m.predict_proba(Xt[t:t + 1])[0], atol=1e-9)
    np.testing.assert_allclose(P[1], a.predict_proba(Xt[1:2])[0], atol=1e-15)


def test_refit_refuses_emptying_a_class():
    X = np.random.default_rng(0).normal(size=(9, 2))
    y = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2])
    a = RelabelAudit(device="cpu").fit(X, y)
    with pytest.raises(ValueError, match="leave a class with no training point"):
        a.retrain_probabilities(X[:1], [np.array([6, 7, 8])], new_labels=[np.array([0, 0, 1])])
    assert mc.empty_class_sets(y, 3, [(np.array([6, 7, 8]), np.array([0, 0, 1])),
                                      (np.array([6, 7]), np.array([0, 0]))]).tolist() == [True, False]


# ----------------------------------------------------------------------------------- minimal sets
def tiny(seed):
    """12 points, 3 classes, test points from weak to confident: minimal sets of size 1, 2 and 3."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(3), 4)
    centers = np.array([[1.0, 0.0], [-0.5, 0.9], [-0.5, -0.9]])
    X = 1.5 * centers[y] + 0.5 * rng.normal(size=(12, 2))
    Xt = centers[rng.integers(0, 3, 8)] * rng.uniform(0, 1.5, size=(8, 1)) + 0.3 * rng.normal(size=(8, 2))
    return X, y, Xt


SIZES_SEEN = []


@pytest.mark.parametrize("seed, target", [(1, None), (3, None), (2, 2)])
def test_minimal_sets_against_exhaustive_enumeration(seed, target):
    X, y, Xt = tiny(seed)
    a = RelabelAudit(l2=0.3, device="cpu").fit(X, y)
    ms = a.minimal_sets(Xt, target_class=target, singles_limit=10_000, pairs_limit=10_000)
    true, witness, allconv = exhaustive_multiclass(a, Xt, max_size=3, target_class=target)
    assert allconv
    pred = np.argmax(a.predict_proba(Xt), 1)
    assert (true > 0).any()
    for t in range(len(Xt)):
        if true[t] == -1:  # already the target
            assert ms.status[t] == "not_found"
            continue
        # the certificate is never wrong
        if true[t] > 0:
            assert ms.lower_bound[t] <= true[t]
        else:
            assert ms.lower_bound[t] <= 4
        if ms.status[t] == "verified":
            # exhaustive singles and pairs were searched: sets of size <= 2 are found exactly
            if true[t] and true[t] <= 2:
                assert ms.size[t] == true[t]
            assert ms.size[t] >= ms.lower_bound[t]
            assert true[t] and ms.size[t] >= true[t]
            # an independent refit flips
            m = sk_fit(X, relabeled(y, ms.indices(t), ms.new_labels(t)), C=1 / 0.3)
            new = int(np.argmax(m.predict_proba(Xt[t:t + 1])[0]))
            assert (new != pred[t]) if target is None else (new == target)
            np.testing.assert_allclose(ms.new_prob[t], m.predict_proba(Xt[t:t + 1])[0], atol=1e-8)
        elif true[t] and true[t] <= 2:
            pytest.fail(f"row {t}: a set of size {true[t]} exists but none was found")
        if true[t] and true[t] >= 3 and ms.lower_bound_reason[t] == "exhaustive pairs":
            assert ms.lower_bound[t] == 3
    assert (ms.lower_bound_reason != "no certificate").any()
    SIZES_SEEN.extend(true.tolist())


def test_exhaustive_cases_cover_sizes_1_to_3():
    """Runs after the enumeration tests: they met minimal sets of sizes 1, 2 and 3 (not only the easy ones)."""
    if len(SIZES_SEEN) < 24:
        pytest.skip("run with the exhaustive-enumeration tests")
    assert {1, 2, 3} <= set(SIZES_SEEN)


def test_minimal_sets_one_minimal_by_refit():
    X, y, Xt, a = fitted()
    ms = a.minimal_sets(Xt[:6], singles_limit=50, pairs_limit=50)
    pred = np.argmax(a.predict_proba(Xt[:6]), 1)
    assert ms.found.any()
    for t in np.nonzero(ms.found & ms.one_minimal)[0]:
        idx, lab = ms.indices(t), ms.new_labels(t)
        if len(idx) == 1:
            continue
        for j in range(len(idx)):
            m = sk_fit(X, relabeled(y, np.delete(idx, j), np.delete(lab, j)))
            assert int(np.argmax(m.predict_proba(Xt[t:t + 1])[0])) == pred[t]
    df = ms.to_frame()
    assert list(df["minimal_size"]) == list(ms.size)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_gpu_matches_cpu():
    X, y, Xt = make_k(K=4, seed=6)
    cpu = RelabelAudit(device="cpu").fit(X, y)
    gpu = RelabelAudit(device="cuda").fit(X, y)
    np.testing.assert_allclose(gpu.coef_, cpu.coef_, atol=1e-9)
    rc, rg = cpu.flip_sets(Xt), gpu.flip_sets(Xt)
    np.testing.assert_array_equal(rc.flat_indices, rg.flat_indices)
    np.testing.assert_array_equal(rc.flat_new_labels, rg.flat_new_labels)
    np.testing.assert_allclose(gpu.verify(rg).new_prob, cpu.verify(rc).new_prob, atol=1e-8, equal_nan=True)


def test_study_small_and_registered():
    from cfdkit.spurious.data import load_gray_digits
    from cfdkit.studies import multiclass as study
    from cfdkit.studies.reproduce import STUDIES, STUDY_ORDER

    assert "multiclass" in STUDY_ORDER and "multiclass" in STUDIES
    gray, digit = load_gray_digits(8)
    keep = np.isin(digit, (3, 5, 8))
    recs = study.run_label_set("digits 3/5/8", gray.reshape(len(digit), -1)[keep], digit[keep], n_test=6, n_minimal=2)
    r = {x["metric"]: x["cfdkit"] for x in recs}
    assert r["n_classes"] == 3 and r["n_test"] == 6 and r["minimal_n_test"] == 2
    assert r["max_abs_prob_diff_sklearn"] < 1e-8
    assert r["test_accuracy"] > 0.9
    assert 0 <= r["flip_rate"] <= r["found_rate"] <= 1 and r["n_not_converged"] == 0
    assert r["minimal_found_rate"] == 1.0 and r["median_verified_size"] >= r["median_lower_bound"] >= 1


def test_exhaustive_singles_bound_rows_that_already_hold_a_larger_set():
    """When every single relabel was refit and none flips a row, its bound is 2 — also for rows whose flipping
    set of >= 2 labels was found before the singles (Algorithm 1's set); such rows used to report 1."""
    covered = 0
    for seed in range(3):
        rng = np.random.default_rng(seed)
        y = np.repeat(np.arange(3), 20)
        centers = np.array([[1.0, 0.0], [-0.5, 0.9], [-0.5, -0.9]])
        X = 1.2 * centers[y] + 0.7 * rng.normal(size=(60, 2))
        Xt = centers[rng.integers(0, 3, 40)] * rng.uniform(0, 1.5, size=(40, 1)) + 0.4 * rng.normal(size=(40, 2))
        a = RelabelAudit(l2=0.3, device="cpu").fit(X, y)
        ms = a.minimal_sets(Xt, singles_limit=10_000, pairs_limit=0)
        big = (ms.status == "verified") & (ms.size >= 2)
        covered += int(big.sum())
        assert (ms.lower_bound[big] >= 2).all(), (seed, ms.size[big], ms.lower_bound[big])
    assert covered >= 50
