"""Bad-input suite for the linear core (issue 8 §4): RelabelAudit, InverseHVP, model functions, results.

Every case ends either in a correct answer (asserted) or in a ValueError /
TypeError / cfdkit's own IndexError subclass / NotFittedError whose message
names the argument.  Case ids start with ``err-`` or ``ok-``;
``test_counts`` prints tried / clear error / correct answer.
"""

import functools
import math

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

from cfdkit import InverseHVP, RelabelAudit
from cfdkit.linear import model
from cfdkit.core.arrays import Design
from cfdkit.linear.minimal import unique_rows
from cfdkit.core.validation import NotFittedError, ResultIndexError

from conftest import make_problem

N, D = 120, 4


@functools.lru_cache(maxsize=None)
def data():
    X, y, Xt, yt = make_problem(n=N, d=D, n_test=12, seed=7)
    return X, y, Xt, yt


@functools.lru_cache(maxsize=None)
def fitted():
    X, y, Xt, _ = data()
    a = RelabelAudit(l2=1.0, device="cpu").fit(X, y)
    return a, a.flip_sets(Xt)


def fit_with(**kw):
    X, y, _, _ = data()
    return RelabelAudit(device="cpu", **kw).fit(X, y)


CASES = []  # (id, thunk, expected) with expected = (exc_type, regex) or a checker callable(result)


def err(cid, thunk, exc, regex):
    CASES.append(("err-" + cid, thunk, (exc, regex)))


def ok(cid, thunk, check):
    CASES.append(("ok-" + cid, thunk, check))


def fitted_ok(a):
    assert a.fit_info_.converged[0] and np.isfinite(a.coef_).all()


# ----------------------------------------------------------- constructor parameters (checked at fit)
for v, exc in [(0, ValueError), (-1.0, ValueError), (math.nan, ValueError), (math.inf, ValueError),
               ("1", TypeError), (None, TypeError), (True, TypeError), ([1.0], TypeError), (1 + 0j, TypeError)]:
    err(f"l2={v!r}", lambda v=v: fit_with(l2=v), exc, "l2")
for v in (1e-3, np.float32(2.0), 5, np.int64(3)):
    ok(f"l2={v!r}", lambda v=v: fit_with(l2=v), fitted_ok)

for v, exc in [(0, ValueError), (1, ValueError), (-0.1, ValueError), (1.5, ValueError), (math.nan, ValueError),
               ("0.5", TypeError), (None, TypeError), (True, TypeError)]:
    err(f"threshold={v!r}", lambda v=v: fit_with(threshold=v), exc, "threshold")
for v in (0.3, np.float64(0.7), np.float32(0.5)):
    ok(f"threshold={v!r}", lambda v=v: fit_with(threshold=v),
       lambda a, v=v: np.testing.assert_array_equal(a.flip_sets(data()[2]).predicted_label,
                                                    (a.positive_proba(data()[2]) > float(v)).astype(int)))

for v, exc in [(0, ValueError), (-1e-8, ValueError), (math.nan, ValueError), (math.inf, ValueError),
               ("1e-8", TypeError), (None, TypeError)]:
    err(f"tol={v!r}", lambda v=v: fit_with(tol=v), exc, "tol")
for v in (np.float32(1e-8), 1e-6, np.float64(1e-12)):
    ok(f"tol={v!r}", lambda v=v: fit_with(tol=v), lambda a, v=v: (fitted_ok(a), a.fit_info_.grad_norm[0] <= float(v)))

for v in (0, -1, 2.5, "10", None, True):
    err(f"max_iter={v!r}", lambda v=v: fit_with(max_iter=v), ValueError, "max_iter")
ok("max_iter=np.int64(50)", lambda: fit_with(max_iter=np.int64(50)), fitted_ok)

for v in ("qr", None, 3, "CHOLESKY", ""):
    err(f"solver={v!r}", lambda v=v: fit_with(solver=v), ValueError, "solver")
for v in ("cholesky", "cg", "lissa", "arnoldi"):
    ok(f"solver={v}", lambda v=v: fit_with(solver=v, solver_options={"rank": D + 1} if v == "arnoldi" else None),
       lambda a: np.testing.assert_allclose(a.scores(data()[2][:3]), fitted()[0].scores(data()[2][:3]), rtol=1e-6,
                                            atol=1e-9))

for v, exc, rx in [("tol", TypeError, "solver_options"), ([1], TypeError, "solver_options"),
                   ({"foo": 1}, TypeError, "solver_options.*foo"), ({"tol": 2}, ValueError, "solver_options.*tol"),
                   ({"rank": 0}, ValueError, "solver_options.*rank"), ({"damping": math.nan}, ValueError, "damping"),
                   ({"damping": -1.0}, ValueError, "damping"), ({"seed": "a"}, TypeError, "seed"),
                   ({"maxiter": 0}, ValueError, "maxiter"), ({"scale": -2.0}, ValueError, "scale")]:
    err(f"solver_options={v!r}", lambda v=v: fit_with(solver="cg", solver_options=v), exc, rx)
ok("solver_options={'tol': np.float32(1e-8)}", lambda: fit_with(solver="cg", solver_options={"tol": np.float32(1e-8)}),
   lambda a: np.testing.assert_allclose(a.scores(data()[2][:2]), fitted()[0].scores(data()[2][:2]), rtol=1e-5, atol=1e-8))
ok("solver_options={'damping': 0.0}", lambda: fit_with(solver_options={"damping": 0.0}), fitted_ok)

for v in (0, -5, "abc", "10XB", None, 1.5, "0MB", True):
    err(f"memory_budget={v!r}", lambda v=v: fit_with(memory_budget=v), ValueError, "memory_budget")
for v in ("1MB", 10**6, "2 kb", "auto", " AUTO "):
    ok(f"memory_budget={v!r}", lambda v=v: fit_with(memory_budget=v),
       lambda a: np.testing.assert_array_equal(a.flip_sets(data()[2]).size, fitted()[1].size))

for v, exc in [("0", TypeError), ("abc", TypeError), (1.5, TypeError), (-1, ValueError), (2**40, ValueError),
               (None, TypeError), (True, TypeError)]:
    err(f"seed={v!r}", lambda v=v: fit_with(seed=v), exc, "seed")
ok("seed=np.int64(3)", lambda: fit_with(seed=np.int64(3)),
   lambda a: np.testing.assert_array_equal(a.scores(data()[2][:2], method="random"),
                                           fit_with(seed=3).scores(data()[2][:2], method="random")))

for v in ("mps", "meta", "tpu", "gpu", 5, "cuda:1", "cuda:7"):
    err(f"device={v!r}", lambda v=v: RelabelAudit(device=v).fit(*data()[:2]),
        ValueError, "device")
if not torch.cuda.is_available():
    err("device='cuda' without GPU", lambda: RelabelAudit(device="cuda").fit(*data()[:2]), ValueError, "device.*no CUDA")
for v in ("cpu", torch.device("cpu"), None):
    ok(f"device={v!r}", lambda v=v: RelabelAudit(device=v).fit(*data()[:2]),
       lambda a: np.testing.assert_allclose(a.coef_, fitted()[0].coef_, rtol=1e-10))
err("progress='yes'", lambda: fit_with(progress="yes"), TypeError, "progress")

# ------------------------------------------------------------------------------------------ fit(X, y)
X0, y0 = data()[0], data()[1]


def fitX(X, y=None, **kw):
    return RelabelAudit(device="cpu").fit(X, y0 if y is None else y, **kw)


def with_val(v, i=0, j=0):
    X = X0.copy()
    X[i, j] = v
    return X


for v in (math.nan, math.inf, -math.inf):
    err(f"X_train[0,0]={v}", lambda v=v: fitX(with_val(v)), ValueError, "X_train contains 1 NaN or infinite")
err("X_train complex numpy", lambda: fitX(X0 + 1j), TypeError, "X_train is complex")
err("X_train complex torch", lambda: fitX(torch.as_tensor(X0 + 0.5j)), TypeError, "X_train is complex")
err("X_train complex DataFrame", lambda: fitX(pd.DataFrame(X0 + 1j)), TypeError, "X_train is complex")
err("X_train complex sparse", lambda: fitX(sp.csr_matrix(X0 + 1j)), TypeError, "X_train is complex")
err("X_train complex list", lambda: fitX((X0 + 1j).tolist()), TypeError, "X_train is complex")
err("X_train 1-D", lambda: fitX(X0[:, 0]), ValueError, "X_train is 1-D")
err("X_train 3-D", lambda: fitX(X0[:, :, None]), ValueError, "X_train must be 2-D")
err("X_train (0, 4)", lambda: fitX(X0[:0], y0[:0]), ValueError, "X_train is empty")
err("X_train (n, 0)", lambda: fitX(X0[:, :0]), ValueError, "X_train is empty")
err("X_train texts", lambda: fitX(["a b"] * N), TypeError, "X_train looks like a list of texts")
err("X_train object strings", lambda: fitX(np.array([["a"] * D] * N, dtype=object)), TypeError, "X_train")
err("X_train None", lambda: fitX(None), TypeError, "X_train is None")
err("X_train DataFrame with str column",
    lambda: fitX(pd.DataFrame({"a": ["x"] * N, "b": X0[:, 0]})), TypeError, "X_train has non-numeric")


def sparse_with(v):
    S = sp.csr_matrix(X0)
    S.data[3] = v
    return S


for v in (math.nan, math.inf):
    err(f"X_train sparse with {v}", lambda v=v: fitX(sparse_with(v)), ValueError, "X_train contains 1 NaN")
err("X_train value 1e200", lambda: fitX(with_val(1e200)), ValueError, "X_train has values up to 1e\\+200.*Rescale")
err("X_train value -1e180", lambda: fitX(with_val(-1e180)), ValueError, "X_train has values up to")
for name, yy, exc, rx in [
    ("short", y0[:-1], ValueError, "y_train has 119 labels"),
    ("strings", np.where(y0 == 1, "a", "b"), ValueError, "y_train must be binary numeric"),
    ("{0,2}", y0 * 2, ValueError, "y_train must contain only 0 and 1"),
    ("0.5", np.full(N, 0.5), ValueError, "y_train must contain only 0 and 1"),
    ("NaN", np.where(y0 == 1, np.nan, 0.0), ValueError, "y_train contains NaN"),
    ("one class", np.zeros(N), ValueError, "y_train contains only class 0"),
    ("(n,2)", np.c_[y0, y0], ValueError, "y_train must be 1-D"),
    ("None", None, TypeError, "y_train is None"),
]:
    if yy is None:
        err(f"y_train {name}", lambda: RelabelAudit(device="cpu").fit(X0, None), exc, rx)
    else:
        err(f"y_train {name}", lambda yy=yy: fitX(X0, yy), exc, rx)
for name, ci, exc, rx in [("NaN", np.full(D + 1, np.nan), ValueError, "coef_init contains NaN"),
                          ("inf", np.r_[np.zeros(D), np.inf], ValueError, "coef_init contains NaN or infinite"),
                          ("short", np.zeros(D), ValueError, "coef_init must have shape \\(5,\\)"),
                          ("2-D", np.zeros((D + 1, 2)), ValueError, "coef_init must have shape"),
                          ("strings", ["a"] * (D + 1), TypeError, "coef_init must be real"),
                          ("complex", np.zeros(D + 1) + 1j, TypeError, "coef_init must be real")]:
    err(f"coef_init {name}", lambda ci=ci: fitX(X0, coef_init=ci), exc, rx)
ok("coef_init near optimum", lambda: fitX(X0, coef_init=np.r_[fitted()[0].coef_, fitted()[0].intercept_] + 0.1),
   lambda a: np.testing.assert_allclose(a.coef_, fitted()[0].coef_, rtol=1e-8, atol=1e-10))
ok("X_train list of lists", lambda: fitX(X0.tolist()), lambda a: np.testing.assert_allclose(a.coef_, fitted()[0].coef_))
ok("X_train torch", lambda: fitX(torch.as_tensor(X0)), lambda a: np.testing.assert_allclose(a.coef_, fitted()[0].coef_))
ok("X_train sparse", lambda: fitX(sp.csr_matrix(X0)),
   lambda a: np.testing.assert_allclose(a.coef_, fitted()[0].coef_, rtol=1e-9))
ok("X_train float32", lambda: fitX(X0.astype(np.float32)),
   lambda a: np.testing.assert_allclose(a.coef_, fitted()[0].coef_, rtol=1e-5))
ok("y_train bool", lambda: fitX(X0, y0.astype(bool)), lambda a: np.testing.assert_allclose(a.coef_, fitted()[0].coef_))
ok("y_train float", lambda: fitX(X0, y0.astype(float)), lambda a: np.testing.assert_allclose(a.coef_, fitted()[0].coef_))
# features near 1e100 (below the overflow limit): the same problem rescaled (l2 scaled by 1e200) gives the
# same predictions and flip sets (the fit warns that the absolute gradient tolerance is out of reach)
ok("X_train values 1e100 (rescaled problem)", lambda: RelabelAudit(l2=1e200, device="cpu").fit(X0 * 1e100, y0),
   lambda a: (np.testing.assert_allclose(a.predict_proba(data()[2] * 1e100), fitted()[0].predict_proba(data()[2]),
                                         atol=1e-9),
              np.testing.assert_array_equal(a.flip_sets(data()[2] * 1e100).size, fitted()[1].size)))

# ------------------------------------------------------------------------------ queries on a fitted audit
Xt0 = data()[2]


def A():
    return fitted()[0]


for name, Xq, exc, rx in [("3 features", Xt0[:, :3], ValueError, "X_test has 3 features but the audit was fitted with 4"),
                          ("NaN", np.where(np.arange(Xt0.size).reshape(Xt0.shape) == 0, np.nan, Xt0), ValueError,
                           "X_test contains 1 NaN"),
                          ("complex", Xt0 + 1j, TypeError, "X_test is complex"),
                          ("1-D", Xt0[0], ValueError, "X_test is 1-D"),
                          ("empty", Xt0[:0], ValueError, "X_test is empty"),
                          ("None", None, TypeError, "X_test is None"),
                          ("1e200", Xt0 * 1e200, ValueError, "X_test has values up to"),
                          ("sparse NaN", sp.csr_matrix(np.where(Xt0 > 1, np.nan, Xt0)), ValueError, "X_test contains")]:
    err(f"flip_sets X_test {name}", lambda Xq=Xq: A().flip_sets(Xq), exc, rx)
    err(f"removal_sets X_test {name}", lambda Xq=Xq: A().removal_sets(Xq), exc, rx)
    err(f"scores X_test {name}", lambda Xq=Xq: A().scores(Xq), exc, rx)
err("predict_proba X 3 features", lambda: A().predict_proba(Xt0[:, :3]), ValueError, "X has 3 features")
for v in ("bogus", None, 3, "IP_RELABEL"):
    err(f"scores method={v!r}", lambda v=v: A().scores(Xt0, method=v), ValueError, "method")
for name, yq, rx in [("short", np.zeros(3), "y_test must be 1-D"), ("values 2", np.full(len(Xt0), 2), "y_test must contain"),
                     ("NaN", np.full(len(Xt0), np.nan), "y_test must contain"), ("2-D", np.zeros((len(Xt0), 2)), "y_test")]:
    err(f"scores y_test {name}", lambda yq=yq: A().scores(Xt0, method="influence", y_test=yq), ValueError, rx)
for v, exc in [("alg3", ValueError), (None, ValueError), (1, ValueError)]:
    err(f"removal_sets algorithm={v!r}", lambda v=v: A().removal_sets(Xt0, algorithm=v), exc, "algorithm")
for arg, v, exc in [("max_rounds", -1, ValueError), ("max_rounds", 1.5, TypeError), ("max_rounds", "3", TypeError),
                    ("min_shrink", "1", TypeError), ("min_shrink", -2, ValueError), ("min_shrink", None, TypeError)]:
    err(f"removal_sets {arg}={v!r}", lambda arg=arg, v=v: A().removal_sets(Xt0, algorithm="alg2", **{arg: v}), exc, arg)
for m in ("ip_relabel", "ip_remove", "influence", "relatif", "grad_dot", "grad_cos", "random"):
    ok(f"scores method={m}", lambda m=m: A().scores(Xt0, method=m),
       lambda s: (s.shape == (len(Xt0), N)) and np.isfinite(s).all() or (_ for _ in ()).throw(AssertionError(s)))

err("verify res=None", lambda: A().verify(None), TypeError, "res must be the FlipSets")
err("verify res=dict", lambda: A().verify({}), TypeError, "res must be the FlipSets")
err("verify res from another fit", lambda: A().verify(RelabelAudit(l2=2.0, device="cpu").fit(X0, y0).flip_sets(Xt0)),
    ValueError, "res was not produced by this audit.*another fit")
for v in ("yes", 1, None):
    err(f"verify minimize={v!r}", lambda v=v: A().verify(fitted()[1], minimize=v), TypeError, "minimize")
for v, exc in [(0, ValueError), (-1, ValueError), (1.5, ValueError), ("3", ValueError)]:
    err(f"verify max_expand={v!r}", lambda v=v: A().verify(fitted()[1], minimize=True, max_expand=v), exc, "max_expand")


# n_jobs (issue 14): None or a nonzero int; checked before any work
for v, exc, rx in [(0, ValueError, "n_jobs=0 asks for no worker"), (1.5, TypeError, "n_jobs must be None or a nonzero int"),
                   ("2", TypeError, "n_jobs must be None or a nonzero int"), (True, TypeError, "n_jobs must be None"),
                   (np.float64(2), TypeError, "n_jobs must be None")]:
    err(f"flip_sets n_jobs={v!r}", lambda v=v: A().flip_sets(Xt0, n_jobs=v), exc, rx)
    err(f"verify n_jobs={v!r}", lambda v=v: A().verify(fitted()[1], n_jobs=v), exc, rx)
    err(f"minimal_sets n_jobs={v!r}", lambda v=v: A().minimal_sets(Xt0[:2], n_jobs=v), exc, rx)
# sign certificates and the simple orderings of the minimal search
for v in ("yes", 2, None):
    err(f"verify certify={v!r}", lambda v=v: A().verify(fitted()[1], certify=v), (TypeError, ValueError), "certify")
for v in ("distance", ("foo",), ("distance", 3)):
    err(f"minimal_sets orderings={v!r}", lambda v=v: A().minimal_sets(Xt0[:2], orderings=v), ValueError, "orderings")
def _orderings_never_enlarge(m):
    d = A().minimal_sets(Xt0[:3])  # with the default orderings: never larger where both found a set
    both = m.found & d.found
    return len(m) == 3 and m.found.any() and bool(np.all(d.size[both] <= m.size[both]))


ok("minimal_sets orderings=() = no orderings", lambda: A().minimal_sets(Xt0[:3], orderings=()),
   _orderings_never_enlarge)
ok("flip_sets n_jobs=1 = default", lambda: A().flip_sets(Xt0, n_jobs=1),
   lambda r: np.testing.assert_array_equal(r.flat_indices, fitted()[1].flat_indices))
ok("flip_sets n_jobs=np.int64(1) = default", lambda: A().flip_sets(Xt0, n_jobs=np.int64(1)),
   lambda r: np.testing.assert_array_equal(r.size, fitted()[1].size))

def _verify_consistent(v):
    r = fitted()[1]
    f = r.found
    assert v.flip_known.all() and set(v.decided_by[f]) <= {"converged", "certified"}  # every row answered
    np.testing.assert_array_equal(v.flipped[f], (v.new_prob[f] > 0.5) != (r.prob[f] > 0.5))
    assert (v.verified_size[v.flipped] <= r.size[v.flipped]).all()


ok("verify minimize=True", lambda: A().verify(fitted()[1], minimize=True), _verify_consistent)
ok("verify minimize=np.True_ max_expand=4", lambda: A().verify(fitted()[1], minimize=np.True_, max_expand=4),
   _verify_consistent)

n_t = len(Xt0)
for name, sets, kind, exc, rx in [
    ("wrong count", [[0]] * (n_t - 1), "relabel", ValueError, "sets has 11 entries"),
    ("out of range", [[N]] + [[]] * (n_t - 1), "relabel", ValueError, "sets\\[0\\] has indices outside"),
    ("negative", [[-1]] + [[]] * (n_t - 1), "relabel", ValueError, "sets\\[0\\] has indices outside"),
    ("repeated", [[1, 1]] + [[]] * (n_t - 1), "relabel", ValueError, "sets\\[0\\] repeats"),
    ("float 1.5", [[1.5]] + [[]] * (n_t - 1), "relabel", TypeError, "sets\\[0\\] must hold integer"),
    ("strings", [["a"]] + [[]] * (n_t - 1), "relabel", TypeError, "sets\\[0\\] must hold integer"),
    ("not a list", 5, "relabel", TypeError, "sets must be a list"),
    ("kind swap", [[]] * n_t, "swap", ValueError, "kind"),
]:
    err(f"retrain_probabilities {name}", lambda sets=sets, kind=kind: A().retrain_probabilities(Xt0, sets, kind=kind), exc, rx)
ok("retrain_probabilities empty sets = original", lambda: A().retrain_probabilities(Xt0, [[]] * n_t),
   lambda p: np.testing.assert_array_equal(p, A().positive_proba(Xt0)))
ok("retrain_probabilities integral floats", lambda: A().retrain_probabilities(Xt0[:1], [np.array([3.0, 5.0])]),
   lambda p: np.testing.assert_allclose(p, A().retrain_probabilities(Xt0[:1], [np.array([3, 5])])))

# not fitted
for meth, call in [("flip_sets", lambda a: a.flip_sets(Xt0)), ("verify", lambda a: a.verify(fitted()[1])),
                   ("scores", lambda a: a.scores(Xt0)), ("predict_proba", lambda a: a.predict_proba(Xt0)),
                   ("removal_sets", lambda a: a.removal_sets(Xt0)),
                   ("retrain_probabilities", lambda a: a.retrain_probabilities(Xt0, [[]] * n_t))]:
    err(f"not fitted {meth}", lambda call=call: call(RelabelAudit()), NotFittedError, "not fitted")

# ------------------------------------------------------------------------------------------ InverseHVP
P = 5


def spd():
    Am = np.random.default_rng(1).normal(size=(P, P))
    return Am @ Am.T + P * np.eye(P)


for v, exc in [(math.nan, ValueError), (-1.0, ValueError), (math.inf, ValueError), ("0.1", TypeError), (None, TypeError)]:
    err(f"InverseHVP damping={v!r}", lambda v=v: InverseHVP("cholesky", damping=v), exc, "damping")
for v in (0, -1, 1.5, "3"):
    err(f"InverseHVP rank={v!r}", lambda v=v: InverseHVP("arnoldi", rank=v), ValueError, "rank")
for v in (0, 1, math.nan, "1e-8", -1.0, None):
    err(f"InverseHVP tol={v!r}", lambda v=v: InverseHVP("cg", tol=v), ValueError, "tol")
for v in (0, -3, 2.5):
    err(f"InverseHVP maxiter={v!r}", lambda v=v: InverseHVP("cg", maxiter=v), ValueError, "maxiter")
for v, exc in [(-1.0, ValueError), (math.nan, ValueError), ("2", TypeError)]:
    err(f"InverseHVP scale={v!r}", lambda v=v: InverseHVP("lissa", scale=v), exc, "scale")
for v, exc in [("x", TypeError), (1.5, TypeError), (-1, ValueError)]:
    err(f"InverseHVP seed={v!r}", lambda v=v: InverseHVP("arnoldi", seed=v), exc, "seed")
err("InverseHVP solver='lu'", lambda: InverseHVP("lu"), ValueError, "solver")
for s in ("cholesky", "cg", "lissa", "arnoldi"):
    for name, H, exc, rx in [("non-square", np.ones((P, P + 1)), ValueError, "H must be a non-empty square"),
                             ("3-D", np.ones((P, P, 1)), ValueError, "H must be a non-empty square"),
                             ("NaN", np.where(np.eye(P) > 0, np.nan, spd()), ValueError, "H contains"),
                             ("complex", spd() + 1j, TypeError, "H is complex"),
                             ("non-symmetric", spd() + np.triu(np.ones((P, P)), 1), ValueError, "H is not symmetric"),
                             ("strings", [["a"] * P] * P, TypeError, "H must be a numeric")]:
        err(f"InverseHVP({s}).fit H {name}", lambda s=s, H=H: InverseHVP(s).fit(H), exc, rx)
    err(f"InverseHVP({s}).solve before fit", lambda s=s: InverseHVP(s).solve(np.ones(P)), NotFittedError, "not fitted")
    for name, B, exc, rx in [("wrong length", np.ones(P + 1), ValueError, "B has 6 rows"),
                             ("3-D", np.ones((P, 2, 2)), ValueError, "B must have shape"),
                             ("complex", np.ones(P) + 1j, TypeError, "B is complex"),
                             ("strings", ["a"] * P, TypeError, "B must be a numeric"),
                             ("NaN", np.r_[np.ones(P - 1), np.nan], ValueError, "B contains 1 NaN"),
                             ("inf column", np.c_[np.ones(P), np.r_[np.inf, np.ones(P - 1)]], ValueError, "B contains")]:
        err(f"InverseHVP({s}).solve B {name}", lambda s=s, B=B: InverseHVP(s).fit(spd()).solve(B), exc, rx)
    for name, B in [("(p,)", np.arange(1.0, P + 1)), ("(p, 3)", np.random.default_rng(2).normal(size=(P, 3))),
                    ("list", list(range(1, P + 1)))]:
        ok(f"InverseHVP({s}).solve {name}", lambda s=s, B=B: (InverseHVP(s, tol=1e-12, maxiter=100000).fit(spd()).solve(B), B),
           lambda rb: np.testing.assert_allclose(spd() @ rb[0].x.numpy(), np.asarray(rb[1], dtype=float), rtol=1e-7,
                                                 atol=1e-8))
ok("InverseHVP tol=np.float32(1e-8)", lambda: InverseHVP("cg", tol=np.float32(1e-8)).fit(spd()).solve(np.ones(P)),
   lambda r: np.testing.assert_allclose(spd() @ r.x.numpy(), np.ones(P), rtol=1e-6))
ok("InverseHVP damping=np.float32(0.5)", lambda: InverseHVP("cholesky", damping=np.float32(0.5)).fit(spd()).solve(np.ones(P)),
   lambda r: np.testing.assert_allclose((spd() + 0.5 * np.eye(P)) @ r.x.numpy(), np.ones(P), rtol=1e-10))

# ------------------------------------------------------------------------------------------ model functions
Dsg = Design.from_tensor(torch.as_tensor(X0))
Yt = torch.as_tensor(y0, dtype=torch.float64)
W_ok = torch.zeros(D + 1, 1, dtype=torch.float64)
for name, call, exc, rx in [
    ("newton design ndarray", lambda: model.newton(X0, Yt[:, None], W_ok, 1.0), TypeError, "design must be"),
    ("newton W0 wrong p", lambda: model.newton(Dsg, Yt[:, None], torch.zeros(D, 1, dtype=torch.float64), 1.0),
     ValueError, "W0 must have shape"),
    ("newton W0 NaN", lambda: model.newton(Dsg, Yt[:, None], W_ok + math.nan, 1.0), ValueError, "W0 contains NaN"),
    ("newton W0 float32", lambda: model.newton(Dsg, Yt[:, None], W_ok.float(), 1.0), TypeError, "W0 must be a float64"),
    ("newton W0 1-D", lambda: model.newton(Dsg, Yt, W_ok[:, 0], 1.0), ValueError, "W0 must have shape \\(p, m\\)"),
    ("newton Y wrong shape", lambda: model.newton(Dsg, Yt[:10, None], W_ok, 1.0), ValueError, "Y must have shape"),
    ("newton Y NaN", lambda: model.newton(Dsg, Yt[:, None] + math.nan, W_ok, 1.0), ValueError, "Y contains NaN"),
    ("newton l2 NaN", lambda: model.newton(Dsg, Yt[:, None], W_ok, math.nan), ValueError, "l2"),
    ("newton l2 negative", lambda: model.newton(Dsg, Yt[:, None], W_ok, -1.0), ValueError, "l2"),
    ("newton tol 0", lambda: model.newton(Dsg, Yt[:, None], W_ok, 1.0, tol=0), ValueError, "tol"),
    ("newton max_iter 0", lambda: model.newton(Dsg, Yt[:, None], W_ok, 1.0, max_iter=0), ValueError, "max_iter"),
    ("newton_globalized W0 NaN", lambda: model.newton_globalized(Dsg, Yt[:, None], W_ok + math.nan, 1.0), ValueError,
     "W0 contains"),
    ("lbfgs l2 string", lambda: model.lbfgs(Dsg, Yt[:, None], W_ok, "1", precond=None), ValueError, "l2"),
    ("lbfgs Z0 without f0", lambda: model.lbfgs(Dsg, Yt[:, None], W_ok, 1.0, precond=None, Z0=Dsg.matvec(W_ok)),
     ValueError, "Z0 and f0 go together"),
    ("lbfgs Z0 wrong shape", lambda: model.lbfgs(Dsg, Yt[:, None], W_ok, 1.0, precond=None,
                                                 Z0=torch.zeros(3, 1, dtype=torch.float64),
                                                 f0=torch.zeros(1, dtype=torch.float64)),
     ValueError, "Z0 must have shape"),
    ("unique_rows ndarray", lambda: unique_rows(X0),
     TypeError, "Xt must be a cfdkit.core.arrays.Design"),
    ("hessian w 2-D", lambda: model.hessian(Dsg, W_ok, 1.0), ValueError, "w must have shape"),
    ("hessian w NaN", lambda: model.hessian(Dsg, W_ok[:, 0] + math.nan, 1.0), ValueError, "w contains NaN"),
    ("objective W wrong p", lambda: model.objective(Dsg, Yt[:, None], torch.zeros(3, 1, dtype=torch.float64), 1.0),
     ValueError, "W must have shape"),
]:
    err(f"model {name}", call, exc, rx)
ok("model lbfgs with the start's Z0 and f0 handed in", lambda: (
    model.lbfgs(Dsg, Yt[:, None], W_ok, 1.0, precond=None)[0],
    model.lbfgs(Dsg, Yt[:, None], W_ok, 1.0, precond=None, Z0=Dsg.matvec(W_ok),
                f0=model.objective(Dsg, Yt[:, None], W_ok, 1.0))[0]),
   lambda ws: np.testing.assert_array_equal(ws[0].numpy(), ws[1].numpy()))
ok("model newton vs newton_globalized", lambda: (model.newton(Dsg, Yt[:, None], W_ok, 1.0)[0],
                                                  model.newton_globalized(Dsg, Yt[:, None], W_ok, 1.0)[0]),
   lambda ws: np.testing.assert_allclose(ws[0].numpy(), ws[1].numpy(), rtol=1e-9, atol=1e-11))

# -------------------------------------------------------------------------------------- result accessors
for acc in ("indices", "effects", "path"):
    for v, exc, rx in [(10**6, ResultIndexError, "test row i=1000000 is out of range for 12"),
                       (-13, ResultIndexError, "out of range"), (1.5, TypeError, "i must be an integer"),
                       ("0", TypeError, "i must be an integer"), (None, TypeError, "i must be an integer"),
                       (True, TypeError, "i must be an integer")]:
        err(f"FlipSets.{acc}({v!r})", lambda acc=acc, v=v: getattr(fitted()[1], acc)(v), exc, rx)
    ok(f"FlipSets.{acc}(-1) == {acc}(n-1)", lambda acc=acc: (getattr(fitted()[1], acc)(-1), getattr(fitted()[1], acc)(11)),
       lambda pair: np.testing.assert_array_equal(pair[0], pair[1]))


# ------------------------------------------------------------------------------- more than two classes
@functools.lru_cache(maxsize=None)
def k3():
    rng = np.random.default_rng(11)
    y = np.repeat(np.arange(3), 20)
    X = np.array([[1.0, 0.0], [-0.5, 0.9], [-0.5, -0.9]])[y] * 1.5 + 0.6 * rng.normal(size=(60, 2))
    Xt = rng.normal(size=(5, 2))
    a = RelabelAudit(device="cpu").fit(X, np.array(["a", "b", "c"])[y])
    return X, y, Xt, a, a.flip_sets(Xt)


def _k3_fit(y=None, **kw):
    X, y0, _, _, _ = k3()
    return RelabelAudit(device="cpu", **kw).fit(X, y0 if y is None else y)


_y3 = np.repeat(np.arange(3), 20)
for name, call, exc, rx in [
    ("one class (strings)", lambda: _k3_fit(np.array(["a"] * 60)), ValueError, "y_train has only one class"),
    ("one class (ints)", lambda: _k3_fit(np.zeros(60, dtype=int)), ValueError, "y_train"),
    ("non-integer float classes", lambda: _k3_fit(_y3 + 0.5), ValueError, "y_train has non-integer float labels"),
    ("mixed label types", lambda: _k3_fit(np.array([0, "b", 2.0] * 20, dtype=object)), TypeError, "y_train mixes"),
    ("NaN in K labels", lambda: _k3_fit(np.where(np.arange(60) == 3, np.nan, _y3.astype(float))), ValueError,
     "y_train"),
    ("K labels wrong length", lambda: _k3_fit(np.arange(61) % 3), ValueError, "y_train"),
    ("threshold with K classes", lambda: _k3_fit(threshold=0.3), ValueError, "threshold=0.3 applies to two classes"),
    ("solver cg with K classes", lambda: _k3_fit(solver="cg"), ValueError, "solver='cg'"),
    ("coef_init shape K classes", lambda: RelabelAudit(device="cpu").fit(k3()[0], _y3, coef_init=np.zeros(3)),
     ValueError, r"coef_init must be finite with shape \(3, 3\)"),
    ("target_class not a class", lambda: k3()[3].flip_sets(k3()[2], target_class="z"), ValueError,
     "target_class='z' is not one of the classes"),
    ("target_class code for string classes", lambda: k3()[3].flip_sets(k3()[2], target_class=0), ValueError,
     "target_class=0 is not one of the classes"),
    ("target_class bool", lambda: k3()[3].flip_sets(k3()[2], target_class=True), TypeError, "target_class"),
    ("target_class on binary", lambda: fitted()[0].flip_sets(data()[2], target_class=1), ValueError,
     "target_class is for more than two classes"),
    ("minimal_sets target_class not a class", lambda: k3()[3].minimal_sets(k3()[2], target_class="q"), ValueError,
     "target_class='q'"),
    ("new_labels missing", lambda: k3()[3].retrain_probabilities(k3()[2][:1], [[0]]), TypeError,
     "new_labels is required"),
    ("new_labels not a class", lambda: k3()[3].retrain_probabilities(k3()[2][:1], [[0]], new_labels=[["d"]]),
     ValueError, r"new_labels\[0\]='d' is not one of the classes"),
    ("new_labels code out of range", lambda: k3()[3].retrain_probabilities(k3()[2][:1], [[0]], new_labels=[[5]]),
     ValueError, r"new_labels\[0\]=5 is not one of the classes"),
    ("new_labels unchanged class", lambda: k3()[3].retrain_probabilities(k3()[2][:1], [[0]], new_labels=[["a"]]),
     ValueError, "equals the current label"),
    ("new_labels misaligned", lambda: k3()[3].retrain_probabilities(k3()[2][:1], [[0, 1]], new_labels=[["b"]]),
     ValueError, r"new_labels\[0\] has 1 labels for 2 indices"),
    ("new_labels wrong count", lambda: k3()[3].retrain_probabilities(k3()[2][:2], [[0], [1]], new_labels=[["b"]]),
     ValueError, "new_labels must be a list with one array per set"),
    ("K sets index out of range", lambda: k3()[3].retrain_probabilities(k3()[2][:1], [[600]], new_labels=[["b"]]),
     ValueError, "outside"),
    ("K sets empty a class", lambda: k3()[3].retrain_probabilities(
        k3()[2][:1], [list(range(20))], new_labels=[["b"] * 20]), ValueError, "leave a class with no training point"),
    ("new_labels on binary", lambda: fitted()[0].retrain_probabilities(data()[2][:1], [[0]], new_labels=[[1]]),
     ValueError, "new_labels is for more than two classes"),
    ("kind remove with K classes", lambda: k3()[3].retrain_probabilities(k3()[2][:1], [[0]], "remove",
                                                                          new_labels=[["b"]]), ValueError, "kind='remove'"),
    ("removal_sets with K classes", lambda: k3()[3].removal_sets(k3()[2]), ValueError, "removal_sets is for two classes"),
    ("scores with K classes", lambda: k3()[3].scores(k3()[2]), ValueError, "scores is for two classes"),
    ("verify binary result on K audit", lambda: k3()[3].verify(fitted()[1]), TypeError, "res must be the MulticlassFlipSets"),
    ("verify minimize with K classes", lambda: k3()[3].verify(k3()[4], minimize=True), ValueError, "minimize=True"),
    ("verify K result from another fit", lambda: _k3_fit(l2=2.0).verify(k3()[4]), ValueError,
     "not produced by this audit's current fit"),
    ("K result indices out of range", lambda: k3()[4].indices(99), ResultIndexError, "out of range"),
    ("K result new_labels float index", lambda: k3()[4].new_labels(0.5), TypeError, "i must be an integer"),
    ("K X_test wrong width", lambda: k3()[3].flip_sets(np.zeros((2, 5))), ValueError, "X_test"),
]:
    err(f"multiclass {name}", call, exc, rx)
ok("multiclass string classes fit", lambda: k3()[3],
   lambda a: list(a.classes_) == ["a", "b", "c"] and a.fit_info_.converged[0])
ok("multiclass new_classes mapped back", lambda: k3()[4],
   lambda fs: all(set(fs.new_classes(i)) <= {"a", "b", "c"} and fs.new_labels(i).dtype == np.int64
                  for i in range(len(fs))) and fs.found.any())
ok("multiclass predict_proba rows sum to 1", lambda: k3()[3].predict_proba(k3()[2]),
   lambda P: P.shape == (5, 3) and np.allclose(P.sum(1), 1.0))
ok("multiclass integral float labels", lambda: _k3_fit(_y3.astype(float)), lambda a: a.n_classes_ == 3)


# ------------------------------------------------------------------------------------------------ runner
@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("cid, thunk, expected", CASES, ids=[c[0] for c in CASES])
def test_case(cid, thunk, expected):
    if isinstance(expected, tuple):
        exc, rx = expected
        with pytest.raises(exc, match=rx) as info:
            thunk()
        assert isinstance(info.value, (ValueError, TypeError, ResultIndexError, NotFittedError))
        assert type(info.value).__module__ in ("builtins", "cfdkit.core.validation"), type(info.value)
    else:
        out = thunk()
        res = expected(out)
        assert res is not False


def test_counts(capsys):
    n_err = sum(c[0].startswith("err-") for c in CASES)
    n_ok = sum(c[0].startswith("ok-") for c in CASES)
    with capsys.disabled():
        print(f"\nbad-input suite (core): tried {len(CASES)}, clear error {n_err}, correct answer {n_ok}")
    assert n_err + n_ok == len(CASES) >= 150
