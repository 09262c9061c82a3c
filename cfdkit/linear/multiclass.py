"""More than two classes: multinomial (softmax) L2 logistic regression and its relabel sets.

``RelabelAudit(...).fit(X, y)`` with ``K > 2`` distinct labels (integers, integral floats
or strings; sorted as :func:`numpy.unique` sorts them and kept in ``classes_``) comes
here.  Everything is float64.

Model
-----
Class ``k`` has a weight row ``W[k] = [w_k, b_k]`` (``p = d + 1``, intercept last);
``z(x) = W x~`` are the logits and ``P(y = k | x) = softmax(z)_k``.  The objective is

    R(W) = sum_i L_i(W) + l2/2 sum_k ||w_k||^2 + rho/2 (sum_k b_k)^2,
    L_i(W) = logsumexp(W x~_i) - (W x~_i)_{y_i},

the scikit-learn convention of the binary path (``l2 = 1/C``; ``LogisticRegression(C)``
with the multinomial loss minimizes ``C sum_i L_i + 1/2 ||W_w||^2``, the same
minimizer), intercepts unpenalized.  The loss is unchanged when every intercept moves
by the same amount, so the ``K`` intercepts are only determined up to that shift;
scikit-learn reports the centred ones (``sum_k b_k = 0``).  The gauge term
``rho/2 (sum_k b_k)^2`` (``rho = n / K``) pins exactly that optimum without changing
any prediction, and makes the ``Kp x Kp`` Hessian positive definite:

    H = sum_i (diag(p_i) - p_i p_i^T) (x) x~_i x~_i^T + l2 I_w + rho (1 1^T) (x) e_b e_b^T

(``(x)`` the Kronecker product over (class, feature), ``I_w`` the identity on the weight
entries, ``e_b`` the intercept coordinate).  The fit is Newton's method with the dense
Hessian (Cholesky) and a backtracking line search, to gradient norm ``tol``.

IP-relabel for the softmax (derivation)
---------------------------------------
Relabeling training point ``i`` from class ``c`` to ``c'`` changes the objective by a
*linear* term, ``L(x_i, c'; W) - L(x_i, c; W) = (z_c - z_{c'})(x_i)``, so its gradient
changes by the constant ``Delta g = (e_c - e_{c'}) (x) x~_i`` (and a set ``S`` of
relabels adds up these vectors).  At the fitted optimum ``grad R = 0``; the first-order
(one Newton step) change of the optimum is

    Delta theta = -H^{-1} Delta g,

and, as the logits are linear in the parameters, test point ``t``'s logits change by

    Delta z_t[k] = (e_k (x) x~_t)^T Delta theta = B_ti[k, c'] - B_ti[k, c],
    B_ti[k, l] = (e_k (x) x~_t)^T H^{-1} (e_l (x) x~_i)          (a K x K block).

``Delta g`` sums to zero over the classes, so it is orthogonal to the gauge direction
(every intercept up by one) and the gauge term does not enter ``Delta z``: the result is
the same as with the pseudo-inverse of the singular (gauge-free) ``Kp``-dimensional
Hessian (tested against autograd).  The ``(K-1)p``-dimensional parametrization with a
reference class fixed at zero is not used: the penalty on all ``K`` weight vectors (the
scikit-learn objective) is not a function of it.  ``B`` comes from one Cholesky solve with
``K`` right-hand sides per test point.

The prediction is ``c^_t = argmax_k z_t[k]``; its *margins* are ``m_k = z_t[c^] - z_t[k]
> 0`` (k != c^).  The IP-relabel score of relabeling ``i`` to ``c'`` towards class ``k``
is the first-order change of ``z_k - z_{c^}``:

    s_t(i, c' ; k) = Delta z_t[k] - Delta z_t[c^]      (it flips ``c^`` against ``k`` when it exceeds ``m_k``).

Algorithm 1 for ``K`` classes
-----------------------------
*Any flip* (``target_class=None``): the predicted class changes iff some ``k != c^`` gets
``z_k > z_{c^}``.  For each ``k`` the problem is the binary one: every training point gets
its best new label ``c'_i = argmax_{c' != y_i} s_t(i, c'; k)`` and benefit ``b_i`` (the max);
points are taken in decreasing ``b_i`` (ties: lower index) until the summed benefit
exceeds ``m_k``.  Of the ``K - 1`` candidate sets the smallest is returned (ties: the larger
estimated overshoot, then the lower class); ``aimed_class`` says which ``k`` it was.
*A named target* ``tau``: ``tau`` must beat *every* class, ``z_tau - z_j > 0`` for all ``j``.
The greedy then adds, one at a time, the (point, new label) that most raises the
smallest estimated margin ``min_j (z_tau - z_j)`` (ties: larger sum of margins, lower
index), until it is positive; when no relabel raises it, there is no set.

Verification and minimal sets
-----------------------------
:func:`refit_relabeled` refits each set exactly (batched Newton, warm-started at the
first-order step, same ``tol``); a set that would leave a class with no training point
has no finite optimum (that intercept diverges) and is refused.  :func:`minimal_search`
checks Algorithm 1's set, every single relabel (all ``n (K-1)`` when few enough; then a
lower bound of 2 is certified when none flips), pairs (all of them when few enough:
lower bound 3), grows unverified sets along the greedy order, and shrinks every found
set to 1-minimal by leave-one-out refits.  "verified" always means: a converged exact
refit flips the prediction.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from ..core.arrays import DTYPE, Design
from ..core.validation import check_features, feature_names_of, fit_fingerprint, label_array
from ..core.parallel import block_runs, run_chunks
from .model import FitInfo
from .results import MinimalResult, RaggedSets, VerificationResult
from .search import Stage, run_stages

__all__ = ["is_multiclass", "check_class_labels", "class_index", "MulticlassState", "MulticlassFlipSets",
           "MulticlassVerification", "MulticlassMinimalSets", "MultinomialEngine", "fit_multinomial", "refit_relabeled",
           "logit_blocks", "relabel_effects", "greedy_multiclass", "minimal_search", "empty_class_sets", "flips"]


# ----------------------------------------------------------------------------- labels
_label_array = label_array


def is_multiclass(y) -> bool:
    """True when ``y`` holds more than two distinct labels (then the softmax path applies), or one string label."""
    try:
        arr = _label_array(y)
        if arr.ndim != 1 or arr.size == 0:
            return False
        if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
            return False
        if arr.dtype.kind == "O":
            arr = arr.astype(str)
        k = np.unique(arr).size
        # string labels of one class come here too, for an error that names the problem (one class)
        return k > 2 or (k == 1 and arr.dtype.kind in "OUS")
    except (TypeError, ValueError):
        return False


def check_class_labels(y, n_samples: int, name: str = "y_train"):
    """``(classes (K,), codes int64 (n,))`` for ``K >= 3`` class labels; errors name ``name``."""
    arr = _label_array(y)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D of length n_samples; got shape {arr.shape}.")
    if arr.shape[0] != n_samples:
        raise ValueError(f"{name} has {arr.shape[0]} labels but X has {n_samples} rows; pass one label per training row.")
    if arr.dtype.kind == "O":
        if not all(isinstance(v, str) for v in arr):
            raise TypeError(f"{name} mixes label types; pass all integers or all strings.")
        arr = arr.astype(str)
    if arr.dtype.kind == "b":
        arr = arr.astype(np.int64)
    if arr.dtype.kind not in "iufU":
        raise TypeError(f"{name} must hold integer or string class labels; got dtype {arr.dtype}.")
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name} contains NaN or infinite values; drop or fix those rows.")
        if not np.all(arr == np.round(arr)):
            raise ValueError(f"{name} has non-integer float labels (continuous targets?); pass class labels "
                             "(integers or strings).")
        arr = arr.astype(np.int64)
    classes, codes = np.unique(arr, return_inverse=True)
    if classes.size < 2:
        raise ValueError(f"{name} has only one class ({classes[0]!r}); a classifier needs at least two.")
    return classes, codes.astype(np.int64).reshape(-1)


def class_index(classes: np.ndarray, value, name: str = "target_class") -> int:
    """Index of ``value`` in ``classes`` (an original class label); ValueError naming ``name`` otherwise."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be one of the classes {list(classes)}; got {value!r}.")
    hits = np.nonzero(classes == np.asarray(value, dtype=classes.dtype if classes.dtype.kind == "U" else None))[0] \
        if _comparable(classes, value) else []
    if len(hits) != 1:
        raise ValueError(f"{name}={value!r} is not one of the classes {list(classes.tolist())}; pass one of them "
                         "(the original label, as in y).")
    return int(hits[0])


def _comparable(classes, value) -> bool:
    if classes.dtype.kind == "U":
        return isinstance(value, (str, np.str_))
    return isinstance(value, (int, np.integer, float, np.floating)) and not isinstance(value, (bool, np.bool_))


# ----------------------------------------------------------------------------- model
@dataclass
class MulticlassState:
    """A fitted multinomial model: design ``X~`` (n, p) dense, labels, weights (K, p), Cholesky of ``H0``."""

    X: torch.Tensor
    y: torch.Tensor  # (n,) int64 class codes
    W: torch.Tensor  # (K, p)
    K: int
    l2: float
    rho: float
    L: torch.Tensor  # (Kp, Kp) lower Cholesky factor of H0
    tol: float
    max_iter: int
    memory_budget: int

    @property
    def n(self) -> int:
        return int(self.X.shape[0])

    @property
    def p(self) -> int:
        return int(self.X.shape[1])


def _logits(X: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    """(m, n, K) logits for weights W (m, K, p)."""
    return torch.einsum("np,mkp->mnk", X, W)


def objective(X, Y, W, l2, rho) -> torch.Tensor:
    """``R`` for each member: X (n, p), Y (m, n) int64 codes, W (m, K, p); returns (m,)."""
    Z = _logits(X, W)
    lse = torch.logsumexp(Z, dim=2)
    zy = torch.gather(Z, 2, Y[:, :, None])[:, :, 0]
    return (lse - zy).sum(1) + 0.5 * l2 * (W[:, :, :-1] ** 2).sum((1, 2)) + 0.5 * rho * W[:, :, -1].sum(1) ** 2


def gradient(X, Y, W, l2, rho):
    """Gradient (m, K, p) and probabilities (m, n, K)."""
    Z = _logits(X, W)
    P = torch.softmax(Z, dim=2)
    R = P.clone()
    R.scatter_add_(2, Y[:, :, None], -torch.ones_like(R[:, :, :1]))
    G = torch.einsum("mnk,np->mkp", R, X)
    G[:, :, :-1] += l2 * W[:, :, :-1]
    G[:, :, -1] += rho * W[:, :, -1].sum(1, keepdim=True)
    return G, P


def hessian(X, P, l2, rho, chunk_bytes: int = 64 << 20) -> torch.Tensor:
    """Dense Hessians (m, Kp, Kp) (index ``k * p + a``) at probabilities P (m, n, K)."""
    m, n, K = P.shape
    p = X.shape[1]
    iu = torch.triu_indices(K, K, device=X.device)  # class pairs k <= l: the (k, l) and (l, k) blocks are equal
    on_diag = torch.nonzero(iu[0] == iu[1]).squeeze(1)
    Hb = torch.zeros(m, iu.shape[1], p * p, dtype=DTYPE, device=X.device)
    step = max(1, chunk_bytes // (8 * p * p))
    for s in range(0, n, step):
        Xs = X[s:s + step]
        Ps = P[:, s:s + step]
        A = -Ps[:, :, iu[0]] * Ps[:, :, iu[1]]  # (m, c, pairs): (diag(p) - p p^T)_{kl}
        A[:, :, on_diag] += Ps
        XX = (Xs[:, :, None] * Xs[:, None, :]).reshape(Xs.shape[0], p * p)
        Hb += torch.matmul(A.transpose(1, 2), XX)
    Hb = Hb.reshape(m, -1, p, p)
    H = torch.empty(m, K, K, p, p, dtype=DTYPE, device=X.device)
    H[:, iu[0], iu[1]] = Hb
    H[:, iu[1], iu[0]] = Hb
    H = H.permute(0, 1, 3, 2, 4).reshape(m, K * p, K * p)
    w_idx = torch.tensor([k * p + a for k in range(K) for a in range(p - 1)], device=X.device)
    H[:, w_idx, w_idx] += l2
    b_idx = torch.arange(K, device=X.device) * p + (p - 1)
    H[:, b_idx[:, None], b_idx[None, :]] += rho
    return H


def _members_per_batch(n, K, p, memory_budget) -> int:
    per = 8 * (4 * (K * p) ** 2 + 8 * n * K + 4 * K * p)
    return int(max(1, min(2048, memory_budget // per)))


def newton_batched(X, Y, W0, l2, rho, *, tol, max_iter, memory_budget=1 << 30):
    """Minimize ``R`` for every member: Y (m, n) codes, W0 (m, K, p); returns W (m, K, p), FitInfo."""
    m, K, p = W0.shape
    W_out = W0.clone()
    gn_out = np.empty(m)
    it_out = np.zeros(m, dtype=np.int64)
    bs = _members_per_batch(X.shape[0], K, p, memory_budget)
    for s in range(0, m, bs):
        W, info = _newton_block(X, Y[s:s + bs], W0[s:s + bs].clone(), l2, rho, tol, max_iter)
        W_out[s:s + bs] = W
        gn_out[s:s + bs] = info[0]
        it_out[s:s + bs] = info[1]
    return W_out, FitInfo(gn_out, it_out, gn_out <= tol)


def _newton_block(X, Y, W, l2, rho, tol, max_iter):
    m, K, p = W.shape
    G, P = gradient(X, Y, W, l2, rho)
    f = objective(X, Y, W, l2, rho)
    gn = torch.linalg.vector_norm(G.reshape(m, -1), dim=1)
    iters = torch.zeros(m, dtype=torch.int64)
    stalled = ~torch.isfinite(f)
    for _ in range(max_iter):
        active = (gn > tol) & ~stalled
        if not bool(active.any()):
            break
        idx = torch.nonzero(active).squeeze(1)
        H = hessian(X, P[idx], l2, rho)
        Lc, bad = torch.linalg.cholesky_ex(H)
        if bool(bad.any()):  # round-off: damp the failing members slightly
            eye = torch.eye(K * p, dtype=DTYPE, device=X.device)
            Lc = torch.linalg.cholesky(H + 1e-10 * (1 + H.diagonal(dim1=1, dim2=2).max(1).values)[:, None, None] * eye)
        Ga = G[idx].reshape(len(idx), -1, 1)
        D = -torch.cholesky_solve(Ga, Lc).reshape(len(idx), K, p)
        slope = (Ga[:, :, 0] * D.reshape(len(idx), -1)).sum(1)
        t = torch.ones(len(idx), dtype=DTYPE, device=X.device)
        fa, Wa = f[idx], W[idx]
        accepted = torch.zeros(len(idx), dtype=torch.bool, device=X.device)
        Wn, fn = Wa.clone(), fa.clone()
        for _ls in range(40):
            todo = torch.nonzero(~accepted).squeeze(1)
            if todo.numel() == 0:
                break
            Wt = Wa[todo] + t[todo, None, None] * D[todo]
            ft = objective(X, Y[idx[todo]], Wt, l2, rho)
            ok = ft <= fa[todo] + 1e-4 * t[todo] * slope[todo] + 1e-13 * torch.abs(fa[todo])
            good = todo[ok]
            Wn[good], fn[good] = Wt[ok], ft[ok]
            accepted[good] = True
            t[todo[~ok]] *= 0.5
        Gn, Pn = gradient(X, Y[idx], Wn, l2, rho)
        gnn = torch.linalg.vector_norm(Gn.reshape(len(idx), -1), dim=1)
        # near round-off the objective cannot rank steps: take the full step when it lowers the gradient
        ok_rf = ~accepted
        if bool(ok_rf.any()):
            Wf = Wa[ok_rf] + D[ok_rf]
            Gf, Pf = gradient(X, Y[idx[ok_rf]], Wf, l2, rho)
            gf = torch.linalg.vector_norm(Gf.reshape(int(ok_rf.sum()), -1), dim=1)
            better = gf < gn[idx[ok_rf]]
            sel = torch.nonzero(ok_rf).squeeze(1)[better]
            Wn[sel], Gn[sel], Pn[sel], gnn[sel] = Wf[better], Gf[better], Pf[better], gf[better]
            fn[sel] = objective(X, Y[idx[sel]], Wf[better], l2, rho)
            accepted[sel] = True
        W[idx], G[idx], P[idx], f[idx], gn[idx] = Wn, Gn, Pn, fn, torch.where(accepted, gnn, gn[idx])
        iters[idx.cpu()] += 1
        stalled[idx[~accepted]] = True
    return W, (gn.cpu().numpy(), iters.numpy())


def fit_multinomial(X: torch.Tensor, y: torch.Tensor, K: int, l2: float, *, tol: float, max_iter: int,
                    W0: torch.Tensor | None = None, memory_budget: int = 1 << 30) -> MulticlassState:
    """Fit on the dense design ``X~`` (n, p) with codes ``y`` (n,) and factor the Hessian; a MulticlassState."""
    n, p = X.shape
    rho = float(n) / K
    if W0 is None:
        W0 = torch.zeros(K, p, dtype=DTYPE, device=X.device)
    W, info = newton_batched(X, y[None, :], W0[None], l2, rho, tol=tol, max_iter=max_iter,
                             memory_budget=memory_budget)
    _, P = gradient(X, y[None, :], W, l2, rho)
    H = hessian(X, P, l2, rho)[0]
    L = torch.linalg.cholesky(H)
    st = MulticlassState(X, y, W[0], K, float(l2), rho, L, float(tol), int(max_iter), int(memory_budget))
    st.fit_info = info
    st.P = P[0]
    return st


def empty_class_sets(y: np.ndarray, K: int, sets) -> np.ndarray:
    """bool (m,): which ``(indices, new_labels)`` relabelings leave some class with no training point."""
    counts = np.bincount(np.asarray(y, dtype=np.int64), minlength=K)
    out = np.zeros(len(sets), dtype=bool)
    for j, (idx, lab) in enumerate(sets):
        if len(idx) == 0:
            continue
        c = counts.copy()
        np.subtract.at(c, y[idx], 1)
        np.add.at(c, lab, 1)
        out[j] = bool((c == 0).any())
    return out


def _delta_g(st: MulticlassState, idx, lab) -> torch.Tensor:
    """Change of the gradient, (K, p), of relabeling ``idx`` to ``lab``: sum (e_c - e_c') (x) x~_i."""
    dg = torch.zeros(st.K, st.p, dtype=DTYPE, device=st.X.device)
    if len(idx):
        it = torch.as_tensor(np.asarray(idx, dtype=np.int64), device=st.X.device)
        lt = torch.as_tensor(np.asarray(lab, dtype=np.int64), device=st.X.device)
        Xi = st.X[it]
        dg.index_add_(0, st.y[it], Xi)
        dg.index_add_(0, lt, -Xi)
    return dg


def refit_relabeled(st: MulticlassState, sets, progress: bool = False, desc: str = "retraining"):
    """Exact refits, one per ``(indices, new_labels)`` pair; weights (m, K, p) and FitInfo.

    Warm start: the fitted weights plus the first-order change (one Newton step), or the fitted
    weights where that start has the higher altered objective.  Sets that empty a class are refused.
    """
    bad = empty_class_sets(st.y.cpu().numpy(), st.K, sets)
    if bad.any():
        j = int(np.nonzero(bad)[0][0])
        raise ValueError(f"sets[{j}] would leave a class with no training point ({int(bad.sum())} such sets): the "
                         "refit has no finite optimum (that class's intercept diverges). Drop those sets "
                         "(cfdkit.linear.multiclass.empty_class_sets finds them).")
    m = len(sets)
    K, p = st.K, st.p
    W_all = torch.empty(m, K, p, dtype=DTYPE, device=st.X.device)
    gn, its = np.empty(m), np.empty(m, dtype=np.int64)
    bs = _members_per_batch(st.n, K, p, st.memory_budget)
    for s in tqdm(range(0, m, bs), desc=desc, disable=not progress or m <= bs, leave=False):
        block = sets[s:s + bs]
        Y = st.y[None, :].repeat(len(block), 1)
        DG = torch.zeros(len(block), K * p, dtype=DTYPE, device=st.X.device)
        for j, (idx, lab) in enumerate(block):
            if len(idx):
                Y[j, torch.as_tensor(np.asarray(idx, dtype=np.int64))] = torch.as_tensor(np.asarray(lab, dtype=np.int64))
                DG[j] = _delta_g(st, idx, lab).reshape(-1)
        step = torch.cholesky_solve(DG.T.contiguous(), st.L).T.reshape(len(block), K, p)
        W0 = st.W[None] - step
        Wh = st.W[None].expand(len(block), -1, -1).clone()
        f0 = objective(st.X, Y, W0, st.l2, st.rho)
        fh = objective(st.X, Y, Wh, st.l2, st.rho)
        worse = ~torch.isfinite(f0) | (f0 > fh)
        W0[worse] = Wh[worse]
        W, info = newton_batched(st.X, Y, W0, st.l2, st.rho, tol=st.tol, max_iter=max(st.max_iter, 100),
                                 memory_budget=st.memory_budget)
        W_all[s:s + len(block)] = W
        gn[s:s + len(block)], its[s:s + len(block)] = info.grad_norm, info.iterations
    return W_all, FitInfo(gn, its, gn <= st.tol)


# ----------------------------------------------------------------------------- scores
def logit_blocks(st: MulticlassState, Xt: torch.Tensor) -> torch.Tensor:
    """``B[t, i, k, l] = (e_k (x) x~_t)^T H^{-1} (e_l (x) x~_i)`` for test rows Xt (c, p); (c, n, K, K)."""
    c, p, K = Xt.shape[0], st.p, st.K
    R = torch.zeros(K, p, c, K, dtype=DTYPE, device=Xt.device)
    for k in range(K):
        R[k, :, :, k] = Xt.T
    V = torch.cholesky_solve(R.reshape(K * p, c * K), st.L).reshape(K, p, c, K)  # V[l, a, t, k]
    return torch.einsum("latk,ia->tikl", V, st.X)


def relabel_effects(st: MulticlassState, Xt: torch.Tensor) -> torch.Tensor:
    """``E[t, i, c', :]``: first-order change of test logits (K,) when ``i`` is relabeled to ``c'``; (c, n, K, K).

    Zero where ``c' = y_i`` (no change).
    """
    B = logit_blocks(st, Xt)  # (c, n, K_logit, K_label)
    Bc = torch.gather(B, 3, st.y[None, :, None, None].expand(B.shape[0], -1, st.K, 1))  # column y_i
    return (B - Bc).transpose(2, 3).contiguous()  # (c, n, c', k)


def greedy_multiclass(E: torch.Tensor, Z: torch.Tensor, y: torch.Tensor, target: int | None = None,
                      max_size: int | None = None):
    """Algorithm 1 for K classes on a block: E (c, n, K, K) effects, Z (c, K) logits, y (n,) training codes.

    Returns per row ``(indices int64, new_labels int64, effects (k, K) float64, aimed class or -1)``.
    """
    c, n, K, _ = E.shape
    out = []
    pred = torch.argmax(Z, dim=1)
    own = torch.nn.functional.one_hot(y, K).bool()  # (n, K): c' == y_i is no relabel
    for t in range(c):
        ch = int(pred[t])
        if target is None:
            out.append(_greedy_any(E[t], Z[t], ch, own, max_size))
        else:
            out.append(_greedy_target(E[t], Z[t], ch, int(target), own, max_size))
    return out


_EMPTY = (np.empty(0, np.int64), np.empty(0, np.int64), None, -1)


def _greedy_any(Et, zt, ch, own, max_size):
    n, K = own.shape
    best = None
    for k in range(K):
        if k == ch:
            continue
        margin = float(zt[ch] - zt[k])
        ben = Et[:, :, k] - Et[:, :, ch]  # (n, c')
        ben = ben.masked_fill(own, -math.inf)
        b, lab = ben.max(dim=1)
        pos = torch.nonzero(b > 0).squeeze(1)
        if pos.numel() == 0:
            continue
        bv = b[pos]
        o1 = torch.argsort(pos, stable=True)
        o2 = torch.argsort(bv[o1], descending=True, stable=True)
        order = pos[o1][o2]
        cs = torch.cumsum(b[order], 0)
        hit = torch.nonzero(cs > margin).squeeze(1)
        if hit.numel() == 0:
            continue
        size = int(hit[0]) + 1
        if max_size is not None and size > max_size:
            continue
        over = float(cs[size - 1]) - margin
        if best is None or size < best[0] or (size == best[0] and over > best[1]):
            best = (size, over, k, order[:size], lab[order[:size]])
    if best is None:
        return _EMPTY
    size, _, k, idx, lab = best
    eff = Et[idx, lab]  # (size, K)
    return idx.cpu().numpy().astype(np.int64), lab.cpu().numpy().astype(np.int64), eff.cpu().numpy(), k


def _greedy_target(Et, zt, ch, tau, own, max_size):
    n, K = own.shape
    if ch == tau:
        return _EMPTY
    others = [j for j in range(K) if j != tau]
    # margin gain of each (i, c') on each other class j: dM[i, c', j] = E[i,c',tau] - E[i,c',j]
    dM = Et[:, :, tau:tau + 1] - Et[:, :, others]  # (n, K, K-1)
    M = (zt[tau] - zt[others]).clone()  # (K-1,)
    avail = ~own.clone()
    chosen_i, chosen_l = [], []
    cap = n if max_size is None else min(n, max_size)
    while float(M.min()) <= 0 and len(chosen_i) < cap:
        newM = M[None, None, :] + dM
        worst = newM.min(dim=2).values.masked_fill(~avail, -math.inf)  # (n, K)
        wmax = worst.max()
        if not bool(wmax > M.min()):
            return _EMPTY
        tie = worst == wmax
        tot = newM.sum(2).masked_fill(~tie, -math.inf)
        flat = int(torch.argmax(tot.reshape(-1)))  # first max: lowest (i, c')
        i, lab = divmod(flat, K)
        chosen_i.append(i)
        chosen_l.append(lab)
        M = newM[i, lab]
        avail[i] = False
    if float(M.min()) <= 0:
        return _EMPTY
    idx = np.asarray(chosen_i, dtype=np.int64)
    lab = np.asarray(chosen_l, dtype=np.int64)
    eff = Et[torch.as_tensor(idx), torch.as_tensor(lab)].cpu().numpy()
    return idx, lab, eff, tau


# ----------------------------------------------------------------------------- results


def _offsets(sizes):
    off = np.zeros(len(sizes) + 1, dtype=np.int64)
    np.cumsum(sizes, out=off[1:])
    return off


class _ClassSets(RaggedSets):
    """:class:`~cfdkit.linear.results.RaggedSets` whose new labels are class codes of ``classes``."""

    def new_classes(self, i) -> np.ndarray:
        """``new_labels(i)`` mapped back to the original class labels."""
        return self.classes[self.new_labels(i)]


@dataclass
class MulticlassFlipSets(_ClassSets):
    """Relabel sets for ``K > 2`` classes (from :meth:`RelabelAudit.flip_sets` on a K-class fit).

    Attributes
    ----------
    classes : np.ndarray (K,) — the original class labels; codes 0..K-1 index it
    prob : float64 (n_test, K) — class probabilities before any change
    logits : float64 (n_test, K)
    target_class : int or None — the code of the named target class (None: any change of the predicted class)
    aimed_class : int64 (n_test,) — the class code the set is estimated to lift above the prediction; -1 where no set
    size : int64 (n_test,) — ``|S_t|``, 0 where no set
    predicted_logits : float64 (n_test, K) — logits plus the summed first-order changes; NaN where no set
    offsets : int64 (n_test + 1,); flat_indices, flat_new_labels : int64; flat_effects : float64 (total, K)
    seconds : float; X_test : plain test features; fingerprint : str
    """

    classes: np.ndarray
    prob: np.ndarray
    logits: np.ndarray
    target_class: int | None
    aimed_class: np.ndarray
    size: np.ndarray
    predicted_logits: np.ndarray
    offsets: np.ndarray
    flat_indices: np.ndarray
    flat_new_labels: np.ndarray
    flat_effects: np.ndarray
    seconds: float = 0.0
    X_test: object = field(default=None, repr=False)
    fingerprint: str | None = None
    kind: str = "relabel"
    method: str = "ip_relabel_softmax"

    @classmethod
    def from_rows(cls, rows, *, classes, logits, target_class, seconds=0.0, X_test=None, fingerprint=None):
        K = len(classes)
        logits = np.asarray(logits, dtype=np.float64)
        size = np.array([len(r[0]) for r in rows], dtype=np.int64)
        off = _offsets(size)
        flat_i = np.concatenate([r[0] for r in rows]).astype(np.int64) if rows else np.empty(0, np.int64)
        flat_l = np.concatenate([r[1] for r in rows]).astype(np.int64) if rows else np.empty(0, np.int64)
        effs = [r[2] if r[2] is not None else np.empty((0, K)) for r in rows]
        flat_e = np.concatenate(effs).astype(np.float64) if rows else np.empty((0, K))
        pl = np.full_like(logits, np.nan)
        for t, e in enumerate(effs):
            if len(e):
                pl[t] = logits[t] + e.sum(0)
        prob = _softmax_np(logits)
        aimed = np.array([r[3] for r in rows], dtype=np.int64)
        return cls(np.asarray(classes), prob, logits, target_class, aimed, size, pl, off, flat_i, flat_l, flat_e,
                   float(seconds), X_test, fingerprint)

    @property
    def n_classes(self) -> int:
        return int(len(self.classes))

    @property
    def found(self) -> np.ndarray:
        return self.size > 0

    @property
    def predicted_label(self) -> np.ndarray:
        """int64 (n_test,): predicted class code before any change."""
        return np.argmax(self.logits, axis=1).astype(np.int64)

    @property
    def estimated_label(self) -> np.ndarray:
        """int64 (n_test,): the class the first-order estimate predicts after the set; -1 where no set."""
        out = np.full(len(self), -1, dtype=np.int64)
        f = self.found
        out[f] = np.argmax(self.predicted_logits[f], axis=1)
        return out

    def effects(self, i) -> np.ndarray:
        """First-order change of the test logits from each member, float64 (|S_t|, K)."""
        i = self._check(i)
        return self.flat_effects[self.offsets[i]:self.offsets[i + 1]].copy()

    def to_frame(self) -> pd.DataFrame:
        cl = self.classes
        return pd.DataFrame({
            "test_index": np.arange(len(self)),
            "predicted_class": cl[self.predicted_label],
            "prob_predicted": self.prob[np.arange(len(self)), self.predicted_label],
            "estimated_size": self.size,
            "estimated_found": self.found,
            "estimated_aimed_class": [cl[a] if a >= 0 else None for a in self.aimed_class],
            "estimated_indices": [self.indices(i).tolist() for i in range(len(self))],
            "estimated_new_classes": [self.new_classes(i).tolist() for i in range(len(self))],
        })

    def summary(self) -> dict:
        s = self.size[self.size > 0]
        return {"n_test": len(self), "n_classes": self.n_classes,
                "found_rate": float(self.found.mean()) if len(self) else float("nan"),
                "mean_size": float(s.mean()) if s.size else float("nan"),
                "median_size": float(np.median(s)) if s.size else float("nan")}


def _softmax_np(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


@dataclass
class MulticlassVerification(VerificationResult):
    """Exact refits of :class:`MulticlassFlipSets`.

    flipped : (n_test,) bool, or float64 with NaN where the refit did not converge — the refitted model
        predicts another class (``target_class`` None) or the target class
    new_prob : float64 (n_test, K) — after the refit; NaN rows where no set
    new_label : int64 (n_test,) — predicted class code after the refit; -1 where no set
    predicted_delta, actual_delta : float64 (n_test,) — estimated / actual change of the margin
        ``z[aimed] - z[predicted]``; NaN where no set
    rel_error : float64 (n_test,); grad_norm : float64 (n_test,); converged : bool (n_test,) (True where no set)
    """

    sets: MulticlassFlipSets
    flipped: np.ndarray
    new_prob: np.ndarray
    new_label: np.ndarray
    predicted_delta: np.ndarray
    actual_delta: np.ndarray
    rel_error: np.ndarray
    grad_norm: np.ndarray
    converged: np.ndarray
    seconds: float = 0.0
    refits: int = 0
    fingerprint: str | None = None

    def to_frame(self) -> pd.DataFrame:
        df = self.sets.to_frame()
        known = self.flip_known
        fl = pd.array(np.nan_to_num(np.asarray(self.flipped, dtype=float)) > 0, dtype="boolean")
        fl[~known] = pd.NA
        df["estimated_flipped"] = fl
        df["estimated_converged"] = known
        df["estimated_decided_by"] = self.decided_by
        cl = self.sets.classes
        df["estimated_refit_class"] = [cl[v] if v >= 0 else None for v in self.new_label]
        df["estimated_linear_delta"] = self.predicted_delta
        df["estimated_refit_delta"] = self.actual_delta
        df["estimated_grad_norm"] = self.grad_norm
        return df


@dataclass
class MulticlassMinimalSets(MinimalResult, _ClassSets):
    """Verified, 1-minimal relabel sets for K classes (see :func:`minimal_search`).

    status : "verified" (a converged exact refit flips) or "not_found"; size, indices(i), new_labels(i)
    new_prob : float64 (n_test, K) after the refit (NaN rows where not found); new_label : int64 (-1 where not found)
    lower_bound : int64 — certified: no relabeling of fewer labels flips; ``lower_bound_reason`` says why
        ("exhaustive singles", "exhaustive pairs", "found set of size 1", or "no certificate" with 1)
    estimated_size : Algorithm 1's ``|S_t|``; one_minimal : bool; timings : dict — seconds per search stage
    """

    classes: np.ndarray
    target_class: int | None
    prob: np.ndarray
    size: np.ndarray
    status: np.ndarray
    new_prob: np.ndarray
    new_label: np.ndarray
    lower_bound: np.ndarray
    lower_bound_reason: np.ndarray
    estimated_size: np.ndarray
    one_minimal: np.ndarray
    offsets: np.ndarray
    flat_indices: np.ndarray
    flat_new_labels: np.ndarray
    refits: int = 0
    seconds: float = 0.0
    fingerprint: str | None = None
    X_test: object = field(default=None, repr=False)
    timings: dict = field(default_factory=dict)

    def to_frame(self) -> pd.DataFrame:
        cl = self.classes
        pred = np.argmax(self.prob, axis=1)
        return pd.DataFrame({
            "test_index": np.arange(len(self)), "predicted_class": cl[pred], "estimated_size": self.estimated_size,
            "minimal_size": self.size, "minimal_status": self.status, "lower_bound": self.lower_bound,
            "lower_bound_reason": self.lower_bound_reason, "one_minimal": self.one_minimal,
            "proven_minimal": self.proven_minimal,
            "minimal_new_class": [cl[v] if v >= 0 else None for v in self.new_label],
            "minimal_indices": [self.indices(i).tolist() for i in range(len(self))],
            "minimal_new_classes": [self.new_classes(i).tolist() for i in range(len(self))]})



# ----------------------------------------------------------------------------- audit glue
def _block_rows(st: MulticlassState, memory_budget: int, n_test: int) -> int:
    per_row = 8 * 4 * st.n * st.K * st.K + 8 * st.K * st.K * st.p
    return int(max(1, min(n_test, memory_budget // per_row)))


def flip_sets(eng, Xd: Design, target_class=None, max_size=None, n_jobs=None) -> MulticlassFlipSets:
    """Algorithm 1 for every row of the test design ``Xd`` of a K-class audit (see the module docstring).

    The score blocks (``memory_budget`` rows each) are the units of work: ``n_jobs`` hands contiguous runs of
    whole blocks to joblib (:func:`cfdkit.core.parallel.block_runs`), so the result does not depend on ``n_jobs``.
    """
    st = eng.state
    tgt = None if target_class is None else class_index(eng.classes, target_class)
    t0 = time.perf_counter()
    Xt = Xd.dense_rows()
    Z = Xt @ st.W.T  # (n_test, K)
    step = _block_rows(st, eng.settings.memory_budget, Xt.shape[0])
    runs = block_runs(Xt.shape[0], step, n_jobs)
    if len(runs) <= 1:
        rows = flip_rows(eng, Xt, Z, tgt, max_size, step)
    else:
        parts = run_chunks(flip_rows, eng, [(Xt[a:b].cpu(), Z[a:b].cpu(), tgt, max_size, step) for a, b in runs],
                           n_jobs, nbytes=eng.nbytes())
        rows = [r for part in parts for r in part]
    return MulticlassFlipSets.from_rows(rows, classes=eng.classes, logits=Z.cpu().numpy(), target_class=tgt,
                                        seconds=time.perf_counter() - t0, X_test=Xd.to_plain(),
                                        fingerprint=eng.fingerprint)


def flip_rows(eng, Xt: torch.Tensor, Z: torch.Tensor, tgt, max_size, step: int) -> list:
    """Algorithm 1's ``(indices, new labels, effects, aimed class)`` of each row of the dense test rows ``Xt``
    (logits ``Z``), block by block of ``step`` rows: one unit of work (here or on a joblib worker)."""
    st = eng.state
    Xt, Z = Xt.to(st.X.device), Z.to(st.X.device)
    rows = []
    starts = range(0, Xt.shape[0], step)
    for s in tqdm(starts, desc="flip sets (K classes)", disable=not eng.settings.progress or len(starts) < 2,
                  leave=False):
        E = relabel_effects(st, Xt[s:s + step])
        rows.extend(greedy_multiclass(E, Z[s:s + step], st.y, tgt, max_size))
    return rows


def refit_units(eng, sets, n_jobs=None, desc: str = "retraining"):
    """:func:`refit_relabeled` with contiguous runs of whole refit batches handed to joblib workers (the batches,
    not ``n_jobs``, fix the result); ``(W (m, K, p), FitInfo)``."""
    st = eng.state
    runs = block_runs(len(sets), _members_per_batch(st.n, st.K, st.p, st.memory_budget), n_jobs)
    if len(runs) <= 1:
        return refit_relabeled(st, sets, progress=eng.settings.progress, desc=desc)
    parts = run_chunks(refit_chunk, eng, [(sets[a:b],) for a, b in runs], n_jobs, nbytes=eng.nbytes())
    W = torch.cat([p[0].to(st.X.device) for p in parts])
    return W, FitInfo(np.concatenate([p[1].grad_norm for p in parts]), np.concatenate([p[1].iterations for p in parts]),
                      np.concatenate([p[1].converged for p in parts]))


def refit_chunk(eng, sets):
    """One run of whole refit batches on a worker: ``(W on the CPU, FitInfo)``."""
    W, info = refit_relabeled(eng.state, sets)
    return W.cpu(), info


def flips(logits_new: np.ndarray, pred: np.ndarray, target) -> np.ndarray:
    new = np.argmax(logits_new, axis=-1)
    return (new != pred) if target is None else (new == target)


def check_result(eng, res, name="res"):
    if not isinstance(res, MulticlassFlipSets):
        raise TypeError(f"{name} must be the MulticlassFlipSets returned by flip_sets of this K-class audit; "
                        f"got {type(res).__name__}.")
    if res.fingerprint is None or res.fingerprint != eng.fingerprint or res.X_test is None:
        raise ValueError(f"{name} was not produced by this audit's current fit (fit fingerprint differs: other "
                         "training data, labels, parameters or coefficients). Recompute it: audit.flip_sets(X_test).")


def _result_X(eng, res) -> torch.Tensor:
    from ..core.arrays import to_torch_matrix

    return Design.from_tensor(to_torch_matrix(res.X_test, eng.settings.device, "res.X_test")).dense_rows()


def verify(eng, res: MulticlassFlipSets, n_jobs=None) -> MulticlassVerification:
    """Refit every found set exactly and check the flip (see :class:`MulticlassVerification`)."""
    check_result(eng, res)
    st = eng.state
    t0 = time.perf_counter()
    Xt = _result_X(eng, res)
    n, K = len(res), st.K
    rows = np.nonzero(res.found)[0]
    new_prob = np.full((n, K), np.nan)
    new_label = np.full(n, -1, dtype=np.int64)
    gn = np.full(n, np.nan)
    conv = np.ones(n, dtype=bool)
    pred = res.predicted_label
    pdelta, adelta = np.full(n, np.nan), np.full(n, np.nan)
    flipped_b = np.zeros(n, dtype=bool)
    if rows.size:
        W, info = refit_units(eng, [(res.indices(i), res.new_labels(i)) for i in rows], n_jobs,
                                  desc="verifying")
        r = torch.as_tensor(rows, device=Xt.device)
        Znew = torch.einsum("mp,mkp->mk", Xt[r], W).cpu().numpy()
        new_prob[rows] = _softmax_np(Znew)
        new_label[rows] = np.argmax(Znew, axis=1)
        gn[rows], conv[rows] = info.grad_norm, info.converged
        a, c = res.aimed_class[rows], pred[rows]
        ar = np.arange(rows.size)
        pdelta[rows] = (res.predicted_logits[rows, a] - res.predicted_logits[rows, c]) - (res.logits[rows, a]
                                                                                        - res.logits[rows, c])
        adelta[rows] = (Znew[ar, a] - Znew[ar, c]) - (res.logits[rows, a] - res.logits[rows, c])
        flipped_b[rows] = flips(Znew, c, res.target_class) & info.converged
        if not info.converged.all():
            warnings.warn(f"{int((~info.converged).sum())} verification refits stopped above tol={st.tol:.1e}; "
                          "those rows are marked converged=False and counted neither as flipped nor not.",
                          RuntimeWarning, stacklevel=4)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.abs(pdelta - adelta) / np.abs(adelta)
    if conv.all():
        flipped = flipped_b
    else:
        flipped = flipped_b.astype(np.float64)
        flipped[~conv] = np.nan
    return MulticlassVerification(res, flipped, new_prob, new_label, pdelta, adelta, rel, gn, conv,
                                  time.perf_counter() - t0, int(rows.size), eng.fingerprint)


def check_relabel_sets(eng, sets, new_labels, n_rows: int, check_index):
    """Checked ``[(indices, codes)]`` from user ``sets`` and ``new_labels`` (original class labels);
    ``check_index(s, j)`` checks one index set."""
    if isinstance(sets, (str, bytes)) or not hasattr(sets, "__len__"):
        raise TypeError(f"sets must be a list of index arrays, one per row of X_test; got {type(sets).__name__}.")
    if new_labels is None:
        raise TypeError("new_labels is required with more than two classes: one array of new class labels per set, "
                        "aligned with its indices.")
    if isinstance(new_labels, (str, bytes)) or not hasattr(new_labels, "__len__") or len(new_labels) != len(sets):
        raise ValueError(f"new_labels must be a list with one array per set ({len(sets)}); got "
                         f"{type(new_labels).__name__}.")
    if len(sets) != n_rows:
        raise ValueError(f"sets has {len(sets)} entries but X_test has {n_rows} rows; pass one index set per test row.")
    out = []
    y = eng.state.y.cpu().numpy()
    for j, (s, nl) in enumerate(zip(sets, new_labels)):
        idx = check_index(s, j)
        labs = np.asarray(nl).reshape(-1)
        if labs.shape[0] != idx.shape[0]:
            raise ValueError(f"new_labels[{j}] has {labs.shape[0]} labels for {idx.shape[0]} indices; pass one new "
                             "class per index.")
        codes = np.array([class_index(eng.classes, v.item() if hasattr(v, "item") else v, f"new_labels[{j}]")
                          for v in labs], dtype=np.int64)
        if np.any(codes == y[idx]):
            k = int(np.nonzero(codes == y[idx])[0][0])
            raise ValueError(f"new_labels[{j}][{k}] equals the current label of training point {idx[k]}; a relabel "
                             "must change the class.")
        out.append((idx, codes))
    return out


def retrain_probabilities(eng, Xd: Design, sets, new_labels, check_index) -> np.ndarray:
    """Class probabilities (n_test, K) after refitting with ``sets[t]`` relabeled to ``new_labels[t]``."""
    pairs = check_relabel_sets(eng, sets, new_labels, Xd.n, check_index)
    st = eng.state
    Xt = Xd.dense_rows()
    out = _softmax_np((Xt @ st.W.T).cpu().numpy())
    rows = np.array([i for i, (s, _) in enumerate(pairs) if len(s)], dtype=np.int64)
    if rows.size:
        W, info = refit_units(eng, [pairs[i] for i in rows])
        Z = torch.einsum("mp,mkp->mk", Xt[torch.as_tensor(rows)], W).cpu().numpy()
        out[rows] = _softmax_np(Z)
        if not info.converged.all():
            out[rows[~info.converged]] = np.nan
            warnings.warn(f"{int((~info.converged).sum())} refits stopped above tol={st.tol:.1e}; their "
                          "probabilities are NaN (no answer). Increase max_iter.", RuntimeWarning, stacklevel=4)
    return out


# ----------------------------------------------------------------------------- minimal sets
class _Pool:
    """Every refit made for one row is read by every row (one refit gives every test point's logits)."""

    def __init__(self, st, Xt, pred, target, max_size, progress):
        self.st, self.Xt, self.pred, self.target, self.max_size = st, Xt, pred, target, max_size
        n = Xt.shape[0]
        self.best_size = np.full(n, np.iinfo(np.int64).max)
        self.best = [None] * n
        self.best_logits = np.full((n, st.K), np.nan)
        self.refits = 0
        self.progress = progress
        self.y = st.y.cpu().numpy()

    def refit(self, pairs, offer=True):
        """Refit valid pairs; returns (logits (n_test, m), converged (m,), kept pairs)."""
        if not pairs:
            return np.empty((self.Xt.shape[0], 0, self.st.K)), np.empty(0, bool), []
        bad = empty_class_sets(self.y, self.st.K, pairs)
        pairs = [p for p, b in zip(pairs, bad) if not b]
        if not pairs:
            return np.empty((self.Xt.shape[0], 0, self.st.K)), np.empty(0, bool), []
        W, info = refit_relabeled(self.st, pairs, progress=self.progress, desc="minimal sets")
        self.refits += len(pairs)
        self.last_W = W
        Z = torch.einsum("tp,mkp->tmk", self.Xt, W).cpu().numpy()
        if offer:
            fl = flips(Z, self.pred[:, None], self.target) & info.converged[None, :]
            if self.target is not None:  # a row already predicted as the target has nothing to find
                fl &= (self.pred != self.target)[:, None]
            for t, j in zip(*np.nonzero(fl)):
                s = len(pairs[j][0])
                if s < self.best_size[t] and (self.max_size is None or s <= self.max_size):
                    self.best_size[t], self.best[t], self.best_logits[t] = s, pairs[j], Z[t, j]
        return Z, info.converged, pairs

    def found(self):
        return np.array([b is not None for b in self.best])


def minimal_search(eng, Xd: Design, *, target_class=None, max_size=None, singles_limit=2000, pairs_limit=2000,
                   pair_candidates=6, triple_candidates=6, max_rounds=30):
    """Verified 1-minimal relabel sets for a K-class audit (module docstring; returns MulticlassMinimalSets): the
    stages of :data:`STAGES` run by :func:`cfdkit.linear.search.run_stages`, as the binary search's."""
    st = eng.state
    t0 = time.perf_counter()
    fs = flip_sets(eng, Xd, target_class=target_class)
    Xt = _result_X(eng, fs)
    pool = _Pool(st, Xt, fs.predicted_label, fs.target_class, max_size, eng.settings.progress)
    s = _KSearch(st, fs, Xt, pool, max_size=max_size, singles_limit=singles_limit, pairs_limit=pairs_limit,
                 pair_candidates=pair_candidates, triple_candidates=triple_candidates, max_rounds=max_rounds)
    timings = run_stages(s, STAGES)
    n_test, K, lb, reason = s.n_test, st.K, s.lb, s.reason
    found = pool.found()
    size = np.where(found, pool.best_size, 0).astype(np.int64)
    lb[found & (size == 1)] = 1
    reason[found & (size == 1)] = "found set of size 1"
    lb = np.where(found, np.minimum(lb, size), lb)
    sets = [pool.best[t] if found[t] else (np.empty(0, np.int64), np.empty(0, np.int64)) for t in range(n_test)]
    off = _offsets([len(x[0]) for x in sets])
    flat_i = np.concatenate([x[0] for x in sets]).astype(np.int64)
    flat_l = np.concatenate([x[1] for x in sets]).astype(np.int64)
    new_prob = np.full((n_test, K), np.nan)
    new_prob[found] = _softmax_np(pool.best_logits[found]) if found.any() else new_prob[found]
    new_label = np.where(found, np.argmax(np.nan_to_num(pool.best_logits, nan=-np.inf), axis=1), -1)
    return MulticlassMinimalSets(eng.classes, s.tgt, fs.prob, size, np.where(found, "verified", "not_found"),
                                 new_prob, new_label.astype(np.int64), lb, reason.astype(str), fs.size.copy(),
                                 s.one_min & found, off, flat_i, flat_l, pool.refits, time.perf_counter() - t0,
                                 eng.fingerprint, fs.X_test, timings)


class _KSearch:
    """What the stages of one K-class search share: the fit, Algorithm 1's sets, the test rows, the pool of
    refits, the parameters, and what each stage leaves for the next (``all_singles``, ``lb``, ``one_min``)."""

    def __init__(self, st, fs, Xt, pool, **params):
        self.st, self.fs, self.Xt, self.pool = st, fs, Xt, pool
        self.__dict__.update(params)
        self.tgt, self.pred = fs.target_class, fs.predicted_label
        self.n_test, self.K, self.n = len(fs), st.K, st.n
        self.lb = np.ones(self.n_test, dtype=np.int64)
        self.reason = np.array(["no certificate"] * self.n_test, dtype=object)
        self.trivially_done = np.zeros(self.n_test, dtype=bool)
        if self.tgt is not None:
            self.trivially_done = self.pred == self.tgt  # already predicted as the target: nothing to find
        self.all_singles = False
        self.one_min = np.zeros(self.n_test, dtype=bool)
        self._effects = {}

    def ranked_pairs(self, t, m):
        """The m strongest (i, c') single relabels of row t by their first-order effect on its worst margin."""
        if t not in self._effects:
            self._effects[t] = relabel_effects(self.st, self.Xt[t:t + 1])[0]
        E, K = self._effects[t], self.K
        if self.tgt is None:
            gain = (E - E[:, :, int(self.pred[t])][:, :, None]).max(dim=2).values  # best rival's gain
        else:
            gain = (E[:, :, self.tgt][:, :, None] - E).min(dim=2).values
        own = torch.nn.functional.one_hot(self.st.y, K).bool()
        gain = gain.masked_fill(own, -math.inf).reshape(-1)
        top = torch.topk(gain, min(m, gain.numel())).indices.cpu().numpy()
        return [divmod(int(f), K) for f in top]


def _kstage_estimates(s: _KSearch) -> None:
    """1. Algorithm 1's sets."""
    fs = s.fs
    s.pool.refit([(fs.indices(i), fs.new_labels(i)) for i in np.nonzero(fs.found)[0]])


def _kstage_singles(s: _KSearch) -> None:
    """2. Singles: every (i, c') when few enough (then a lower bound of 2 where none flips), else each row's
    strongest candidates."""
    pool, K = s.pool, s.K
    singles = [(np.array([i]), np.array([c])) for i in range(s.n) for c in range(K) if c != int(pool.y[i])]
    if len(singles) <= s.singles_limit:
        Z1, c1, kept1 = pool.refit(singles)
        s.all_singles = bool(c1.all()) and len(kept1) == len(singles)
        # every single was refit and none flips these rows (a set of >= 2 labels found earlier included)
        open_rows = (pool.best_size > 1) & ~s.trivially_done
        if s.all_singles:
            s.lb[open_rows] = 2
            s.reason[open_rows] = "exhaustive singles"
    else:
        cand = sorted({(i, c) for t in np.nonzero(~s.trivially_done)[0] for i, c in s.ranked_pairs(t, 3)})
        pool.refit([(np.array([i]), np.array([c])) for i, c in cand])


def _kstage_pairs(s: _KSearch) -> None:
    """3. Pairs: all when few enough (after exhaustive singles; then a lower bound of 3), else of each open row's
    strongest candidates."""
    pool, K, n, max_size = s.pool, s.K, s.n, s.max_size
    open_rows = np.nonzero(~s.trivially_done & (pool.best_size > 2))[0]
    if open_rows.size and (max_size is None or max_size >= 2):
        n_pairs = math.comb(n, 2) * (K - 1) ** 2
        if s.all_singles and n_pairs <= s.pairs_limit:
            pairs = []
            for i, j in combinations(range(n), 2):
                for ci in range(K):
                    for cj in range(K):
                        if ci != pool.y[i] and cj != pool.y[j]:
                            pairs.append((np.array([i, j]), np.array([ci, cj])))
            _, c2, kept2 = pool.refit(pairs)
            exhaustive = bool(c2.all()) and len(kept2) == len(pairs)
            still = (pool.best_size > 2) & ~s.trivially_done
            if exhaustive:
                s.lb[still] = 3
                s.reason[still] = "exhaustive pairs"
        else:
            cand = set()
            for t in open_rows:
                top = s.ranked_pairs(int(t), s.pair_candidates)
                for a, b in combinations(top, 2):
                    if a[0] != b[0]:
                        cand.add((min(a, b), max(a, b)))
            pool.refit([(np.array([a[0], b[0]]), np.array([a[1], b[1]])) for a, b in sorted(cand)])


def _kstage_triples(s: _KSearch) -> None:
    """3b. Triples of each open row's strongest candidates, where the best set so far has 4 or more labels."""
    pool, max_size = s.pool, s.max_size
    open_rows = np.nonzero(~s.trivially_done & (pool.best_size > 3))[0]
    if open_rows.size and s.triple_candidates >= 3 and (max_size is None or max_size >= 3):
        cand = set()
        for t in open_rows:
            top = s.ranked_pairs(int(t), s.triple_candidates)
            for tri in combinations(top, 3):
                if len({a[0] for a in tri}) == 3:
                    cand.add(tuple(sorted(tri)))
        pool.refit([(np.array([a[0] for a in tri]), np.array([a[1] for a in tri])) for tri in sorted(cand)])


def _kstage_greedy(s: _KSearch) -> None:
    """4. Re-linearized greedy: rows still without a set (or with one above 3 labels) continue from the refit of
    their current set, with the IP-relabel effects recomputed at that refit's optimum."""
    pool, fs, st, K, max_size, pred, tgt = s.pool, s.fs, s.st, s.K, s.max_size, s.pred, s.tgt
    grow = np.nonzero(~s.trivially_done & (pool.best_size > 3))[0]
    cur = {int(t): (fs.indices(int(t)), fs.new_labels(int(t))) for t in grow if fs.size[int(t)] > 0}
    for _round in range(s.max_rounds):
        todo = list(cur)
        if not todo:
            break
        pairs = [cur[t] for t in todo]
        valid = ~empty_class_sets(pool.y, K, pairs)
        todo = [t for t, v in zip(todo, valid) if v]
        if not todo:
            break
        Z, conv, kept = pool.refit([cur[t] for t in todo])
        W = pool.last_W
        nxt = {}
        for j, t in enumerate(todo):
            if not conv[j] or flips(Z[t, j], pred[t], tgt):
                continue  # the set flips (offered to the pool) or its refit has no answer
            idx, lab = cur[t]
            room = None if max_size is None else max_size - len(idx)
            if room is not None and room <= 0:
                continue
            add = _relinearized_step(st, s.Xt[t:t + 1], idx, lab, W[j], tgt, room)
            if add is not None:
                nxt[t] = (np.concatenate([idx, add[0]]), np.concatenate([lab, add[1]]))
        cur = nxt


def _kstage_shrink(s: _KSearch) -> None:
    """5. Shrink found sets to 1-minimal (delta debugging: drop chunks, then single labels; each by a refit)."""
    for t in np.nonzero(s.pool.found())[0]:
        s.one_min[t] = _shrink(s.pool, int(t), s.pred, s.tgt)


#: The K-class search, stage by stage (:func:`cfdkit.linear.search.run_stages`).
STAGES = (Stage("alg1", "Algorithm 1's sets", _kstage_estimates), Stage("singles", "single relabels", _kstage_singles),
          Stage("pairs", "pairs", _kstage_pairs), Stage("triples", "triples", _kstage_triples),
          Stage("greedy", "re-linearized greedy", _kstage_greedy), Stage("shrink", "shrink", _kstage_shrink))


def _relinearized_step(st, xt, idx, lab, W, tgt, room):
    """Greedy set (indices, new labels) from the refitted optimum ``W`` of labels with ``idx -> lab`` applied,
    with the effects recomputed there (Hessian at ``W``); points of the set are not chosen again.  None if none."""
    from dataclasses import replace

    y2 = st.y.clone()
    it = torch.as_tensor(idx, device=y2.device)
    y2[it] = torch.as_tensor(lab, device=y2.device)
    _, P = gradient(st.X, y2[None], W[None], st.l2, st.rho)
    L, bad = torch.linalg.cholesky_ex(hessian(st.X, P, st.l2, st.rho)[0])
    if int(bad):
        return None
    st2 = replace(st, y=y2, W=W, L=L)
    E = relabel_effects(st2, xt)[0]
    own = torch.nn.functional.one_hot(y2, st.K).bool()
    own[it] = True
    z = (xt @ W.T)[0]
    ch = int(torch.argmax(z))
    out = _greedy_any(E, z, ch, own, room) if tgt is None else _greedy_target(E, z, ch, int(tgt), own, room)
    return None if len(out[0]) == 0 else (out[0], out[1])


def _shrink(pool, t, pred, tgt) -> bool:
    """Shrink ``pool.best[t]`` while it keeps flipping (chunks first, then single labels); True if 1-minimal."""
    idx, lab = pool.best[t]
    g = 2
    while len(idx) > 1:
        g = min(g, len(idx))
        chunks = np.array_split(np.arange(len(idx)), g)
        cands = [(np.delete(idx, c), np.delete(lab, c)) for c in chunks]
        valid = ~empty_class_sets(pool.y, pool.st.K, cands)
        Z, conv, kept = pool.refit([c for c, v in zip(cands, valid) if v], offer=False)
        fl = np.zeros(len(cands), dtype=bool)
        ok = np.zeros(len(cands), dtype=bool)
        if len(kept):
            fl[valid] = flips(Z[t], pred[t], tgt) & conv
            ok[valid] = conv
        if fl.any():
            j = int(np.argmax(fl))
            idx, lab = cands[j]
            Zj = Z[t, int(np.sum(valid[:j]))]
            pool.best_size[t], pool.best[t], pool.best_logits[t] = len(idx), (idx, lab), Zj
            g = max(g - 1, 2)
            continue
        if g >= len(idx):
            return bool(ok.all())  # every leave-one-out refit converged and none flips
        g = min(2 * g, len(idx))
    return True


# ----------------------------------------------------------------------------- the engine
class MultinomialEngine:
    """More than two classes: softmax L2 logistic regression (the half-multinomial loss), the same methods as
    :class:`cfdkit.linear.binomial.BinomialEngine`.

    After :meth:`fit`: ``state`` (:class:`MulticlassState`), ``classes`` (K,), ``coef`` (K, d), ``intercept`` (K,),
    ``y_train``, ``n_features``, ``n_train``, ``feature_names`` (or None), ``fit_info``, ``fingerprint``,
    ``seconds``; ``hessian_diagnostics`` is None (the dense ``Kp x Kp`` Hessian is factored by Cholesky).

    ``flip_sets`` and ``verify`` take ``n_jobs`` through the same units of work as the binary engine (whole
    score blocks, whole refit batches: :func:`cfdkit.core.parallel.block_runs`).  Not (yet) on this engine:
    ``n_jobs`` for ``minimal_sets`` (one process: every refit made for one row is read by every row), sparse
    storage of the features (the design is densified), the removal baselines and ``scores``, and sign
    certificates: every refit converges.
    A softmax certificate would need Fact 2 of :mod:`cfdkit.linear.certify` for the softmax curvature
    ``diag(p) - p p^T`` (its change bounded in margin units per class pair) and ``kappa0`` over the ``K``
    class blocks of each row.
    """

    name = "multinomial"
    hessian_diagnostics = None

    def __init__(self, settings):
        self.settings = settings

    def fit(self, X, y, coef_init=None) -> "MultinomialEngine":
        s = self.settings
        if s.threshold != 0.5:
            raise ValueError(f"threshold={s.threshold!r} applies to two classes; with {len(np.unique(_label_array(y)))} "
                             "classes the prediction is the most probable class. Leave threshold at 0.5.")
        if s.solver != "cholesky":
            raise ValueError(f"solver={s.solver!r}: with more than two classes the audit factors the dense "
                             f"(K p) x (K p) Hessian by Cholesky; use solver='cholesky'.")
        t0 = time.perf_counter()
        self.feature_names = feature_names_of(X)
        Xt = check_features(X, s.device, "X_train")
        classes, codes = check_class_labels(y, Xt.shape[0], "y_train")
        K = classes.size
        design = Design.from_tensor(Xt)
        Xa = design.dense_rows()
        yt = torch.as_tensor(codes, device=s.device)
        W0 = None
        if coef_init is not None:
            arr = np.asarray(coef_init, dtype=np.float64)
            if arr.shape != (K, design.p) or not np.all(np.isfinite(arr)):
                raise ValueError(f"coef_init must be finite with shape ({K}, {design.p}) (per class: coefficients, "
                                 f"then the intercept) for {K} classes; got {arr.shape}.")
            W0 = torch.as_tensor(arr, device=s.device)
        st = fit_multinomial(Xa, yt, K, s.l2, tol=s.tol, max_iter=s.max_iter, W0=W0, memory_budget=s.memory_budget)
        info = st.fit_info
        if not info.converged[0]:
            warnings.warn(f"The multinomial fit stopped at gradient norm {info.grad_norm[0]:.3e} (tol={s.tol:.1e}) "
                          f"after {info.iterations[0]} Newton steps; results are approximate. Increase max_iter or "
                          "l2.", RuntimeWarning, stacklevel=3)
        self.state = st
        self.classes = classes
        self.y_train = classes[codes]
        self.n_features = int(Xt.shape[1])
        self.n_train = int(Xt.shape[0])
        self.coef = st.W[:, :-1].cpu().numpy().copy()
        self.intercept = st.W[:, -1].cpu().numpy().copy()
        self.fit_info = info
        params = (s.l2, s.tol, s.max_iter, s.solver, s.seed, "multinomial",
                  sorted((str(k), repr(v)) for k, v in (s.solver_options or {}).items()))
        self.fingerprint = fit_fingerprint({"X": Xt, "y": codes, "classes": classes.astype(str), "w": st.W}, params)
        self.seconds = time.perf_counter() - t0
        return self

    def proba(self, Xd: Design) -> np.ndarray:
        """Class probabilities (n, K), columns ``classes``."""
        return _softmax_np((Xd.dense_rows() @ self.state.W.T).cpu().numpy())

    def positive_proba(self, Xd: Design) -> np.ndarray:
        raise ValueError(f"positive_proba is for two classes; this audit was fitted on {len(self.classes)} classes. "
                         "Use predict_proba(X) (one column per class in classes_).")

    def _two_classes_only(self, name):
        raise ValueError(f"{name} is for two classes; this audit was fitted on {len(self.classes)} classes "
                         "(use flip_sets, verify, minimal_sets, retrain_probabilities, predict_proba).")

    def scores(self, Xt, method, y_test=None):
        self._two_classes_only("scores")

    def removal_sets(self, Xt, algorithm, max_rounds, min_shrink):
        self._two_classes_only("removal_sets")

    def check_target_class(self, target_class) -> None:
        if target_class is not None:
            class_index(self.classes, target_class)

    def check_result(self, res, name: str = "res") -> None:
        check_result(self, res, name)

    def flip_sets(self, Xd: Design, *, target_class=None, n_jobs=None) -> MulticlassFlipSets:
        return flip_sets(self, Xd, target_class=target_class, n_jobs=n_jobs)

    def verify(self, res, *, minimize: bool, max_expand, n_jobs, certify: bool) -> MulticlassVerification:
        if minimize:
            raise ValueError("minimize=True is for two classes; with more classes use audit.minimal_sets(X_test).")
        return verify(self, res, n_jobs)

    def block_rows(self, n_test: int) -> int:
        """Test rows per score block (the unit of work) within ``memory_budget``."""
        return _block_rows(self.state, self.settings.memory_budget, n_test)

    def nbytes(self) -> int:
        """Bytes of the fitted state's tensors (what joblib's Dask backend sees when it decides to scatter)."""
        st = self.state
        return int(8 * (st.X.numel() + 2 * st.n + st.W.numel() + st.L.numel()))

    def retrain_probabilities(self, Xd: Design, sets, kind: str, new_labels, check_index) -> np.ndarray:
        if kind != "relabel":
            raise ValueError("kind='remove' is for two classes; with more classes only relabeling is supported.")
        return retrain_probabilities(self, Xd, sets, new_labels, check_index)

    def minimal_sets(self, Xd: Design, *, target_class, n_jobs, max_size, singles_limit, single_candidates,
                     pairs_limit, pair_candidates, triple_candidates, max_rounds, orderings) -> MulticlassMinimalSets:
        return minimal_search(self, Xd, target_class=target_class, max_size=max_size, singles_limit=singles_limit,
                              pairs_limit=pairs_limit, pair_candidates=max(pair_candidates, 2),
                              triple_candidates=triple_candidates, max_rounds=max_rounds)
