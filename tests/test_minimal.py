"""Verified minimal relabel sets (issue 10): against exhaustive ground truth, the 1-minimal property,
the certified lower bound, and bad input."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from cfdkit.linear import RelabelAudit
from cfdkit.linear.minimal import MinimalSets, lower_bounds
from cfdkit.linear.oracle import exhaustive_minimal
from cfdkit.linear.retrain import one_class_sets, probabilities_after, refit_sets
from conftest import make_problem


def _problem(seed, n=16, d=3, n_test=40, noise=1.0, imbalance=0.0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    w = rng.normal(size=d)
    y = (X @ w + noise * rng.normal(size=n) > imbalance).astype(int)
    if y.min() == y.max():
        y[:2] = [0, 1]
    return X, y, rng.normal(size=(n_test, d)) * 1.5


PROBLEMS = [(s, l2, imb) for s, l2, imb in
            [(0, 0.1, 0.0), (1, 1.0, 0.0), (2, 0.5, 0.0), (3, 2.0, 0.0), (4, 0.3, 1.0), (5, 1.0, 1.5),
             (6, 0.05, 0.0), (7, 5.0, 0.5)]]


@pytest.fixture(scope="module")
def exhaustive_runs():
    out = []
    for seed, l2, imb in PROBLEMS:
        X, y, Xt = _problem(seed, imbalance=imb)
        ex = exhaustive_minimal(X, y, Xt, l2, 5)
        a = RelabelAudit(l2=l2).fit(X, y)
        ms = a.minimal_sets(Xt)
        out.append((X, y, Xt, l2, ex, a, ms))
    return out


def test_sizes_match_exhaustive_truth(exhaustive_runs):
    rows = within = 0
    for X, y, Xt, l2, ex, a, ms in exhaustive_runs:
        assert ex.all_converged
        small = (ex.size > 0) & (ex.size <= 4)
        rows += int(small.sum())
        within += int((ms.size[small] <= ex.size[small] + 1).sum())
        # never "not_found" for a row that some set of <= 4 labels flips
        assert not np.any(ms.status[small] == "not_found")
        # a verified set can never beat the true minimum
        known = ex.size > 0
        assert np.all(ms.size[known & ms.found] >= ex.size[known & ms.found])
    assert rows >= 200
    assert within / rows >= 0.95


def test_lower_bound_never_exceeds_truth(exhaustive_runs):
    for X, y, Xt, l2, ex, a, ms in exhaustive_runs:
        known = ex.size > 0
        assert np.all(ms.lower_bound[known] <= ex.size[known])
        # rows with no set up to 5 have a true minimum above 5 (or none): the bound may be at most that
        assert np.all(ms.lower_bound >= 1)


def test_certificate_alone_is_valid_and_not_trivial(exhaustive_runs):
    """The analytic certificate (without the enumeration part) never exceeds the truth and is > 1 somewhere."""
    nontrivial = 0
    for X, y, Xt, l2, ex, a, ms in exhaustive_runs:
        lb = lower_bounds(a.state_, a._test_design(Xt), a.threshold_)
        known = ex.size > 0
        assert np.all(lb[known] <= ex.size[known])
        nontrivial += int((lb > 1).sum())
    # the certificate says something for confident rows of strongly regularized problems
    X, y, Xt = _problem(11, n=60, n_test=30)
    a = RelabelAudit(l2=50.0).fit(X, y)
    lb = lower_bounds(a.state_, a._test_design(Xt * 3), a.threshold_)
    assert nontrivial + int((lb > 1).sum()) > 0


def test_verified_sets_really_flip_and_are_one_minimal(exhaustive_runs):
    X, y, Xt, l2, ex, a, ms = exhaustive_runs[2]
    rows = np.nonzero(ms.found)[0]
    assert rows.size > 10
    st = a.state_
    D = a._test_design(Xt)
    sets = [ms.indices(i) for i in rows]
    W, info = refit_sets(st, sets)
    assert info.converged.all()
    p = probabilities_after(st, D, rows, W)
    np.testing.assert_allclose(p, ms.new_prob[rows], atol=1e-7)
    assert np.all((p > 0.5) != (ms.prob[rows] > 0.5))
    # 1-minimal: dropping any one label stops the flip
    assert ms.one_minimal[rows].all()
    loo, owner = [], []
    for i in rows:
        s = ms.indices(i)
        for j in range(len(s)):
            cand = np.delete(s, j)
            if len(cand) and not one_class_sets(a.y_train_, [cand])[0]:
                loo.append(cand)
                owner.append(i)
    if loo:
        W, info = refit_sets(st, loo)
        assert info.converged.all()
        q = probabilities_after(st, D, np.array(owner), W)
        assert not np.any((q > 0.5) != (ms.prob[owner] > 0.5))


def test_result_api_and_frame(exhaustive_runs):
    X, y, Xt, l2, ex, a, ms = exhaustive_runs[0]
    assert isinstance(ms, MinimalSets)
    assert ms.size.dtype == np.int64 and ms.lower_bound.dtype == np.int64 and ms.estimated_size.dtype == np.int64
    assert ms.fingerprint == a.fit_fingerprint_
    assert set(np.unique(ms.status)) <= {"verified", "not_found"}
    assert np.all(np.isnan(ms.new_prob[~ms.found])) and np.all(ms.size[~ms.found] == 0)
    df = ms.to_frame()
    for col in ("estimated_size", "minimal_size", "minimal_status", "lower_bound", "minimal_new_prob", "one_minimal",
                "minimal_indices"):
        assert col in df.columns
    assert len(df) == len(Xt)
    i = int(np.nonzero(ms.found)[0][0])
    assert len(ms.indices(i)) == ms.size[i] and ms.indices(i).dtype == np.int64
    with pytest.raises(IndexError):
        ms.indices(len(Xt))
    fs = a.flip_sets(Xt)
    np.testing.assert_array_equal(ms.estimated_size, fs.size)


def test_sparse_matches_dense():
    X, y, Xt = _problem(3, n=30, d=6, n_test=15)
    X[np.abs(X) < 0.7] = 0.0
    Xt[np.abs(Xt) < 0.7] = 0.0
    a = RelabelAudit(l2=1.0).fit(X, y)
    b = RelabelAudit(l2=1.0).fit(sp.csr_matrix(X), y)
    m1, m2 = a.minimal_sets(Xt), b.minimal_sets(sp.csr_matrix(Xt))
    np.testing.assert_array_equal(m1.size, m2.size)
    np.testing.assert_array_equal(m1.lower_bound, m2.lower_bound)
    assert np.array_equal(m1.status, m2.status)


def test_larger_problem_without_all_pairs_is_deterministic_and_consistent():
    X, y, Xt = _problem(8, n=120, d=5, n_test=25, imbalance=1.2)
    a = RelabelAudit(l2=0.5).fit(X, y)
    m1 = a.minimal_sets(Xt, pairs_limit=0)
    m2 = a.minimal_sets(Xt, pairs_limit=0)
    np.testing.assert_array_equal(m1.size, m2.size)
    np.testing.assert_array_equal(m1.flat_indices, m2.flat_indices)
    f = m1.found
    assert f.mean() > 0.5
    assert np.all(m1.lower_bound[f] <= m1.size[f])
    # the verified sets are never larger than a flipping Algorithm-1 set of the same row
    fs = a.flip_sets(Xt)
    ver = a.verify(fs)
    ok = np.asarray(ver.flipped, dtype=bool) & f
    assert np.all(m1.size[ok] <= fs.size[ok])


def test_max_size_caps_sets():
    X, y, Xt = _problem(2, n=40, n_test=20)
    a = RelabelAudit(l2=0.5).fit(X, y)
    ms = a.minimal_sets(Xt, max_size=1)
    assert np.all(ms.size <= 1)
    full = a.minimal_sets(Xt)
    np.testing.assert_array_equal(ms.found, full.size == 1)


@pytest.mark.parametrize("bad", [0, -1, 2.5, "3", True])
def test_bad_max_size(bad):
    X, y, Xt = _problem(0)
    a = RelabelAudit(l2=1.0).fit(X, y)
    with pytest.raises(ValueError, match="max_size"):
        a.minimal_sets(Xt, max_size=bad)
    with pytest.raises(ValueError, match="max_size"):
        exhaustive_minimal(X, y, Xt, 1.0, bad)


def test_not_fitted():
    from cfdkit.core.validation import NotFittedError

    with pytest.raises(NotFittedError):
        RelabelAudit().minimal_sets(np.zeros((2, 3)))


def test_exhaustive_refuses_too_many_subsets():
    X, y, Xt = _problem(0, n=40)
    with pytest.raises(ValueError, match="max_subsets"):
        exhaustive_minimal(X, y, Xt, 1.0, 6, max_subsets=1000)


def test_refit_leaving_one_class_is_refused():
    X = np.array([[0.0], [1.0], [2.0], [3.0], [4.0]])
    y = np.array([0, 0, 0, 1, 1])
    a = RelabelAudit(l2=1.0).fit(X, y)
    with pytest.raises(ValueError, match="one class"):
        a.retrain_probabilities(X[:1], [np.array([3, 4])])
    with pytest.raises(ValueError, match="one class"):
        refit_sets(a.state_, [np.array([0, 1, 2])], "relabel")
    assert one_class_sets(y, [np.array([3]), np.array([3, 4]), np.array([0, 1, 2])]).tolist() == [False, True, True]
    assert one_class_sets(y, [np.array([3, 4])], "remove").tolist() == [True]
    # minimal_sets skips such sets instead of reporting a diverged "refit"
    ms = a.minimal_sets(X)
    for i in np.nonzero(ms.found)[0]:
        assert not one_class_sets(y, [ms.indices(i)])[0]
    assert np.all(np.isfinite(ms.new_prob[ms.found]))


def test_verify_minimize_is_not_fooled_by_non_monotone_prefixes(exhaustive_runs):
    """verify(minimize=True) scans every shorter prefix: its answer is the smallest flipping prefix."""
    X, y, Xt, l2, ex, a, ms = exhaustive_runs[2]
    fs = a.flip_sets(Xt)
    ver = a.verify(fs, minimize=True)
    st, D = a.state_, a._test_design(Xt)
    for i in np.nonzero(ver.verified_size > 0)[0][:15]:
        order = fs.indices(i) if ver.verified_size[i] <= fs.size[i] else None
        if order is None:
            continue
        k = int(ver.verified_size[i])
        pref = [order[:j] for j in range(1, k + 1) if not one_class_sets(a.y_train_, [order[:j]])[0]]
        W, info = refit_sets(st, pref)
        p = probabilities_after(st, D, np.full(len(pref), i), W)
        flips = (p > 0.5) != (fs.prob[i] > 0.5)
        assert flips[-1] and not flips[:-1].any()
    assert ver.verified_size_exact is not None


@pytest.mark.gpu
def test_minimal_sets_gpu_matches_cpu():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    X, y, Xt = _problem(2, n=16)
    c = RelabelAudit(l2=0.5, device="cpu").fit(X, y).minimal_sets(Xt)
    g = RelabelAudit(l2=0.5, device="cuda").fit(X, y).minimal_sets(Xt)
    np.testing.assert_array_equal(c.size, g.size)
    np.testing.assert_array_equal(c.lower_bound, g.lower_bound)


def test_cli_audit_minimal_columns(tmp_path, capsys):
    import json

    import pandas as pd

    from cfdkit.cli import main
    from cfdkit.report import minimal_bound_words

    assert minimal_bound_words(1, 1) == "" and minimal_bound_words(7, 3) == "; no fewer than 3 can"
    assert minimal_bound_words(7, 1) == "; no certificate rules out fewer"
    out = tmp_path / "audit"
    rc = main(["audit", "--dataset", "synthetic", "--out", str(out), "--n-test", "12", "--no-plots", "--minimal"])
    assert rc == 0
    df = pd.read_csv(out / "sets.csv")
    for col in ("estimated_size", "minimal_size", "minimal_status", "lower_bound", "minimal_new_prob"):
        assert col in df.columns
    v = df["minimal_status"] == "verified"
    assert v.any()
    assert (df.loc[v, "lower_bound"] <= df.loc[v, "minimal_size"]).all()
    assert df.loc[~v, "minimal_new_prob"].isna().all()
    # report.html shows them beside Algorithm 1's: the smallest verified set first, with its numbers from sets.csv
    html = (out / "report.html").read_text()
    assert "<h2 id='minimal'>Verified minimal sets</h2>" in html
    assert f"{int(v.sum())} of {len(df)} test points have a verified set" in html
    thr = json.loads((out / "summary.json").read_text())["threshold"]
    best = df[v].assign(m=(df.loc[v, "prob"] - thr).abs()).sort_values(["minimal_size", "m"], kind="stable").iloc[0]
    est = int(best["estimated_size"])
    head = (f"Test row {int(best['test_index'])}: "
            + (f"Algorithm 1 says {est} label{'s' if est != 1 else ''}; " if est > 0 else "Algorithm 1 finds no set; ")
            + f"{int(best['minimal_size'])} really suffice{'s' if int(best['minimal_size']) == 1 else ''}"
            + minimal_bound_words(int(best["minimal_size"]), int(best["lower_bound"])))
    assert head in html
    assert f"{best['prob']:.4f} &rarr; {best['minimal_new_prob']:.4f}" in html
    # and the command says so in one line
    assert "verified minimal sets (the answer): found" in capsys.readouterr().out


def test_studies_minimal_summary_on_synthetic():
    from cfdkit.studies.linear import minimal_points, summarize_minimal
    from cfdkit.studies.paper import METRICS

    df = minimal_points("synthetic", n_test=10)
    s = summarize_minimal(df)
    for k in ("minimal_found_rate", "minimal_flip_rate", "median_estimated_size", "median_verified_size",
              "median_lower_bound"):
        assert k in METRICS and k in s
    assert 0 <= s["minimal_found_rate"] <= 1


def test_warm_started_refits_reach_the_same_optimum():
    """refit_sets(starts=...) only changes where L-BFGS starts: the same converged optimum."""
    X, y, Xt = _problem(11, n=2000, d=8, n_test=5)
    a = RelabelAudit(l2=5.0, tol=1e-10).fit(X, y)
    st = a.state_
    rng = np.random.default_rng(0)
    S = np.sort(rng.choice(2000, 40, replace=False))
    W_S, info_S = refit_sets(st, [S])
    assert info_S.converged.all()
    subsets = [np.delete(S, j) for j in range(len(S))]
    cold, ic = refit_sets(st, subsets)
    starts = W_S[:, [0] * len(subsets)].clone()
    starts[:, 3] = float("nan")  # a column without a warm start starts as before
    warm, iw = refit_sets(st, subsets, starts=starts)
    assert ic.converged.all() and iw.converged.all()
    assert np.all(iw.grad_norm <= st.tol)
    # strongly convex: both are within tol / l2 of the unique optimum
    assert float((warm - cold).abs().max()) < 1e-8
    with pytest.raises(ValueError, match="starts must have shape"):
        refit_sets(st, subsets, starts=starts[:, :2])
    with pytest.raises(TypeError, match="starts must be a float64"):
        refit_sets(st, subsets, starts=starts.float())
    # a start that is already the optimum is kept: no iteration, the same weights
    again, ia = refit_sets(st, [S], starts=W_S)
    assert ia.iterations[0] == 0 and torch.equal(again, W_S)
    # deterministic: the same call twice gives bit-identical weights
    warm2, _ = refit_sets(st, subsets, starts=starts)
    assert torch.equal(warm, warm2)


def test_progress_bar_counts_finished_rows(monkeypatch):
    """The minimal_sets bar moves once per test row (rows searched), to exactly n_test, and rows are
    counted as their shrink ends, not all at once after the last phase."""
    import cfdkit.linear.minimal as mm

    updates, postfix, phase_at = [], [], []
    real = mm.tqdm

    def spy(*args, **kwargs):
        bar = real(*args, **{**kwargs, "disable": True})
        orig = bar.update

        def update(k=1):
            updates.append(int(k))
            events.append(("update", int(k)))
            phase_at.append(postfix[-1].rsplit(": ", 1)[0] if postfix else "")
            return orig(k)

        bar.update = update
        bar.set_postfix_str = lambda s="", refresh=True: postfix.append(s)
        return bar

    monkeypatch.setattr(mm, "tqdm", spy)
    events = []  # ("update", k) and ("refit", keep) in call order
    real_refit = mm._Pool.refit

    def refit_spy(self, sets, *args, **kwargs):
        events.append(("refit", kwargs.get("keep")))
        return real_refit(self, sets, *args, **kwargs)

    monkeypatch.setattr(mm._Pool, "refit", refit_spy)
    X, y, Xt = _problem(8, n=120, d=5, n_test=25, imbalance=1.2)
    a = RelabelAudit(l2=0.5, progress=True).fit(X, y)
    ms = a.minimal_sets(Xt, pairs_limit=0)
    assert sum(updates) == len(ms)
    # rows finish at different times: more than a handful of updates, none larger than the row count
    assert len(updates) >= 3 and max(updates) <= len(ms)
    # rows whose shrink has ended are counted during the shrink, round by round (several updates there),
    # the large ones (>= 4 labels) included: nothing is left to count in the triples pass at the end
    in_shrink = [k for k, ph in zip(updates, phase_at) if ph == "shrink"]
    assert int((ms.size >= 4).sum()) >= 5 and len(in_shrink) >= 2, (ms.size, updates, phase_at)
    assert sum(in_shrink) >= int((ms.size >= 4).sum()) and "triples" not in phase_at, (updates, phase_at)
    # each row moves from the chunk phase to single removals at its own pace: rows finish (the bar
    # moves) while other rows are still cutting chunks (keep="first" refits come after an update)
    at = [j for j, e in enumerate(events) if e[0] == "update"]  # event index of each bar update
    first_in_shrink = next(j for j, ph in zip(at, phase_at) if ph == "shrink")
    assert ("refit", "first") in events[first_in_shrink:], events
    # while rows are in flight the bar still moves: after every block of refits it names the phase and
    # the refits made so far, ending at the call's total
    counts = [int(t.rsplit(": ", 1)[1].split()[0].replace(",", "")) for t in postfix]
    assert counts == sorted(counts) and counts[-1] == ms.refits and len(set(counts)) == len(counts)
    phases = {t.rsplit(": ", 1)[0] for t in postfix}
    assert {"Algorithm 1's sets", "single relabels", "shrink"} <= phases


def test_explicit_inverse_preconditioner_reaches_the_same_optimum():
    """The explicit inverse (bfloat16 or float32) only steers L-BFGS: same float64 optimum, converged, deterministic."""
    X, y, Xt = _problem(12, n=600, d=20, n_test=5)
    a = RelabelAudit(l2=2.0, tol=1e-10).fit(X, y)
    st = a.state_
    rng = np.random.default_rng(1)
    sets = [np.sort(rng.choice(600, k, replace=False)) for k in (1, 5, 20, 60)]
    W1, i1 = refit_sets(st, sets)
    W2, i2 = refit_sets(st, sets, explicit_inverse=True)
    want = torch.bfloat16 if st._bf16_ok() else torch.float32
    assert hasattr(st, "_Hinv") and st._Hinv.dtype == want
    assert i1.converged.all() and i2.converged.all() and np.all(i2.grad_norm <= st.tol)
    assert float((W1 - W2).abs().max()) < 1e-9
    W3, _ = refit_sets(st, sets, explicit_inverse=True)
    assert torch.equal(W2, W3)
    # both steerings, forced, reach the same optimum (whichever this CPU would pick)
    for dtype in (torch.float32, torch.bfloat16):
        st._Hinv = st._Hinv.to(torch.float32).to(dtype)
        W4, i4 = refit_sets(st, sets, explicit_inverse=True)
        assert i4.converged.all() and float((W1 - W4).abs().max()) < 1e-9


def test_shrink_orders_chunks_weakest_labels_first():
    """The delta-debugging chunks of the shrink start with the labels that push least towards the flip,
    checked against the push computed independently with a dense solve of H0."""
    from cfdkit.core.arrays import Design, to_torch_matrix
    from cfdkit.linear.minimal import _Pool, _weakest_first
    from cfdkit.linear.model import hessian

    X, y, Xt = _problem(21, n=200, d=6, n_test=6)
    a = RelabelAudit(l2=1.0).fit(X, y)
    st = a.state_
    D = Design.from_tensor(to_torch_matrix(Xt, st.w.device))
    pool = _Pool(st, D, a.threshold, 200, bar=None)
    rng = np.random.default_rng(0)
    cur = {0: np.sort(rng.choice(200, 30, replace=False)), 3: np.sort(rng.choice(200, 12, replace=False)),
           5: np.arange(5)}
    out = _weakest_first(pool, cur)
    assert set(out) == set(cur) and np.array_equal(out[5], cur[5])  # <= 8 labels: untouched
    H = hessian(st.train, st.w, st.l2)
    Xd = st.train.dense_rows(None).numpy()
    Xtd = D.dense_rows(None).numpy()
    for r in (0, 3):
        S = out[r]
        assert sorted(S.tolist()) == sorted(cur[r].tolist())  # a permutation of the set
        v = np.linalg.solve(H.numpy(), Xtd[r])
        push = (Xd[S] @ v) * (1 - 2 * y[S]) * (-1 if pool.orig[r] else 1)
        # least push first (the code's H0^{-1} may be the bfloat16 steering inverse: ~0.4 % per entry)
        assert np.all(np.diff(push) >= -1e-2 * np.abs(push).max())
        assert push[0] < push[-1]


def test_report_marks_sets_whose_one_minimality_was_not_established():
    """report.html never calls a set 1-minimal unless every leave-one-out refit converged (one_minimal)."""
    import pandas as pd

    from cfdkit.report import _minimal_section

    df = pd.DataFrame({"test_index": [0, 1, 2], "prob": [0.1, 0.2, 0.3], "size": [5, 0, 4],
                       "minimal_size": [3, 2, 0], "minimal_status": ["verified", "verified", "not_found"],
                       "lower_bound": [2, 1, 1], "minimal_new_prob": [0.6, 0.7, np.nan],
                       "one_minimal": [True, False, False],
                       "minimal_indices": [np.array([1, 2, 3]), np.array([4, 5]), np.array([], dtype=np.int64)]})
    rows = {"kind": "text", "train_index": np.arange(10), "describe_test": lambda ks: [f"test {k}" for k in ks],
            "describe_train": lambda idx: [f"train {i}" for i in idx]}
    html = _minimal_section(df, rows, np.zeros(10, dtype=np.int64), 0.5, n_points=10, max_set_rows=25)
    assert "2 of 3 test points have a verified set" in html
    assert "Test row 0: Algorithm 1 says 5 labels; 3 really suffice; no fewer than 2 can</h3>" in html
    assert ("Test row 1: Algorithm 1 finds no set; 2 really suffice; no certificate rules out fewer "
            "(not shown to be 1-minimal: a leave-one-out refit did not converge)</h3>") in html
    assert "Test row 2" not in html


def test_cli_audit_minimal_with_no_verified_set_writes_valid_json(tmp_path, capsys, monkeypatch):
    """A --minimal run where no set is verified: medians over no rows are NaN, which summary.json writes as null
    (strict JSON), the command prints "—" and the report says 0 sets; before, NaN reached summary.json."""
    import json

    import cfdkit.studies.linear as lin
    from cfdkit.cli import main

    real = lin.minimal_points

    def none_verified(*args, **kwargs):
        df = real(*args, **kwargs)
        df["minimal_status"] = "not_found"
        df["minimal_size"] = 0
        df["minimal_new_prob"] = np.nan
        df["minimal_indices"] = [np.empty(0, dtype=np.int64) for _ in range(len(df))]
        df["proven_minimal"] = False
        return df

    monkeypatch.setattr(lin, "minimal_points", none_verified)
    out = tmp_path / "audit"
    assert main(["audit", "--dataset", "synthetic", "--out", str(out), "--n-test", "6", "--no-plots", "--minimal"]) == 0

    def refuse(c):
        raise AssertionError(f"summary.json holds {c}")

    summary = json.loads((out / "summary.json").read_text(), parse_constant=refuse)
    assert summary["minimal_found_rate"] == 0.0 and summary["median_verified_size"] is None
    assert "median size — (Algorithm 1:" in capsys.readouterr().out
    assert "0 of 6 test points have a verified set" in (out / "report.html").read_text()


def test_unique_rows_dense_and_sparse():
    """unique_rows finds exactly the rows with identical features, dense or sparse (stored zeros, unsorted)."""
    from cfdkit.core.arrays import Design
    from cfdkit.linear.minimal import unique_rows

    X = np.array([[1.0, 0.0, 2.0], [0.0, 0.0, 0.0], [1.0, 0.0, 2.0], [1.0, 0.0, 2.0 + 1e-15], [0.0, 0.0, 0.0]])
    first, inverse, counts = unique_rows(Design.from_tensor(torch.as_tensor(X)))
    assert first.tolist() == [0, 1, 3] and inverse.tolist() == [0, 1, 0, 2, 1] and counts.tolist() == [2, 2, 1]
    # the same rows as CSR, row 2 with its entries in the other order and an explicit zero
    S = sp.csr_matrix((np.array([1.0, 2.0, 2.0, 1.0, 0.0, 2.0 + 1e-15, 1.0]),
                       np.array([0, 2, 2, 0, 1, 2, 0]), np.array([0, 2, 2, 5, 7, 7])), shape=(5, 3))
    S.has_sorted_indices = False
    first_s, inverse_s, counts_s = unique_rows(Design.from_scipy(S, torch.device("cpu")))
    assert first_s.tolist() == first.tolist() and inverse_s.tolist() == inverse.tolist()
    assert counts_s.tolist() == counts.tolist()


def test_duplicate_test_rows_are_searched_once():
    """Test rows with identical features share one search: the same answer as the distinct rows alone, the
    same refits, and the bar still counts every test row."""
    X, y, Xt = _problem(8, n=120, d=5, n_test=12, imbalance=1.2)
    order = np.array([0, 1, 2, 3, 1, 4, 5, 6, 1, 7, 8, 2, 9, 10, 11, 0])  # rows 0, 1, 2 repeated
    a = RelabelAudit(l2=0.5).fit(X, y)
    one = a.minimal_sets(Xt)
    dup = a.minimal_sets(Xt[order])
    assert dup.refits == one.refits  # no refit made twice for the repeats
    np.testing.assert_array_equal(dup.size, one.size[order])
    np.testing.assert_array_equal(dup.lower_bound, one.lower_bound[order])
    np.testing.assert_array_equal(dup.new_prob, one.new_prob[order])
    np.testing.assert_array_equal(dup.one_minimal, one.one_minimal[order])
    for i, j in enumerate(order):
        np.testing.assert_array_equal(dup.indices(i), one.indices(int(j)))
    assert dup.to_frame().shape[0] == order.size


def test_a_rows_answer_does_not_depend_on_the_other_rows_searched():
    """Each refit answers its owner row only, so a row searched alone gets the same set as in a larger call
    (before, refits made for other rows were offered to every row: 98 labels in a 40-row call, 102 alone)."""
    X, y, Xt, _ = make_problem(n=700, d=12, n_test=16, seed=21)
    a = RelabelAudit(l2=0.5).fit(X, y)
    together = a.minimal_sets(Xt)
    assert together.found.sum() >= 10
    for i in range(0, 16, 3):
        alone = a.minimal_sets(Xt[i:i + 1])
        assert alone.size[0] == together.size[i], i
        np.testing.assert_array_equal(alone.indices(0), together.indices(i))
        assert alone.status[0] == together.status[i] and alone.lower_bound[0] == together.lower_bound[i]


def test_never_larger_than_a_simple_ordering_finds():
    """The search tries the nearest training points with the predicted label, and the IP-relabel order: the
    answer is never larger than the shortest flipping prefix a user finds by refitting prefixes of those
    orders one by one (checked here with converged scikit-learn-accurate refits of every prefix)."""

    rng = np.random.default_rng(3)
    n, d = 400, 6
    Xall = rng.normal(size=(n + 12, d))
    y_all = (Xall @ rng.normal(size=d) - 2.5 + 0.5 * rng.normal(size=n + 12) > 0).astype(np.int64)  # imbalanced
    X, y, Xt = Xall[:n], y_all[:n], Xall[n:]
    a = RelabelAudit(l2=1.0, threshold=0.5).fit(X, y)
    ms = a.minimal_sets(Xt)
    st = a.state_
    pred = ms.prob > 0.5
    checked = 0
    for t in range(len(Xt)):
        cand = np.nonzero(y == int(pred[t]))[0]
        order = cand[np.argsort(((X[cand] - Xt[t]) ** 2).sum(1), kind="stable")]
        prefixes = [order[:k] for k in range(1, min(len(order), 60) + 1)]
        ok = ~one_class_sets(y, prefixes)
        W, info = refit_sets(st, [p for p, o in zip(prefixes, ok) if o])
        P = 1 / (1 + np.exp(-(np.c_[Xt[t:t + 1], np.ones(1)] @ W.numpy())[0]))
        flips = np.nonzero(((P > 0.5) != pred[t]) & info.converged)[0]
        if flips.size:
            k_simple = int(flips[0]) + 1
            checked += 1
            assert ms.found[t] and ms.size[t] <= k_simple, (t, ms.size[t], k_simple)
    assert checked >= 5
