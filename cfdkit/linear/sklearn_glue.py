"""scikit-learn glue: audit a fitted ``LogisticRegression`` (alone or ending a ``Pipeline``) at its exact optimum.

:func:`check_estimator` refuses the settings whose objective cfdkit cannot reproduce and returns the starting
coefficients; :func:`check_matches_estimator` refuses coefficients that are not the optimum on the data given;
:func:`split_pipeline` / :func:`through` take a fitted Pipeline's preceding steps (``transform`` only).
"""

from __future__ import annotations

import numpy as np
import torch

from ..core.arrays import DTYPE
from .model import gradient

__all__ = ["check_estimator", "check_matches_estimator", "split_pipeline", "through", "n_columns", "precision_floor"]


def check_estimator(estimator, X) -> tuple[dict, np.ndarray]:
    """``(estimator.get_params(), starting coefficients (n_features + 1,), intercept last)`` of a fitted binary
    L2 ``LogisticRegression`` whose objective cfdkit reproduces; a clear error for any other."""
    from sklearn.linear_model import LogisticRegression

    if not isinstance(estimator, LogisticRegression):
        raise TypeError(f"estimator must be a sklearn LogisticRegression; got {type(estimator).__name__}.")
    if not hasattr(estimator, "coef_"):
        raise ValueError("estimator is not fitted; call estimator.fit(X, y) first or use RelabelAudit(...).fit(X, y).")
    params = estimator.get_params()
    penalty = params.get("penalty", "deprecated")
    l1_ratio = params.get("l1_ratio", 0.0) or 0.0
    if penalty not in ("l2", "deprecated") or (penalty == "deprecated" and l1_ratio not in (0, 0.0, None)):
        raise ValueError(f"estimator uses penalty={penalty!r}, l1_ratio={l1_ratio!r}; cfdkit reproduces only the "
                         "L2 penalty. Refit with LogisticRegression(C=..., l1_ratio=0) (L2).")
    if params.get("C") is None or not np.isfinite(params["C"]):
        raise ValueError("estimator has no finite C (unpenalized); cfdkit needs l2 = 1/C > 0.")
    if not params.get("fit_intercept", True):
        raise ValueError("estimator was fitted without an intercept; cfdkit's objective has an unpenalized "
                         "intercept. Refit with fit_intercept=True.")
    if params.get("solver") == "liblinear":
        raise ValueError("solver='liblinear' penalizes the intercept, which cfdkit does not reproduce; refit "
                         "with solver='lbfgs' or 'newton-cholesky'.")
    if params.get("class_weight") is not None:
        raise ValueError("class_weight is set; cfdkit's objective weighs every sample equally. Refit without it.")
    if estimator.coef_.shape[0] != 1 or len(estimator.classes_) != 2:
        raise ValueError("estimator is not a binary classifier; cfdkit audits binary labels.")
    if not np.array_equal(np.asarray(estimator.classes_), [0, 1]):
        raise ValueError(f"estimator.classes_ is {list(estimator.classes_)}; map labels to 0/1 and refit.")
    init = np.concatenate([estimator.coef_[0], estimator.intercept_]).astype(np.float64)
    if init.shape[0] != n_columns(X) + 1:
        raise ValueError(f"estimator has {init.shape[0] - 1} coefficients but X has {n_columns(X)} columns; "
                         "pass the X/y the estimator was fitted on.")
    return params, init


def check_matches_estimator(state, w: np.ndarray, estimator, v: np.ndarray, params: dict) -> tuple[float, float]:
    """Refuse when ``estimator.coef_`` is not (close to) the optimum of the objective on X, y, C.

    The test is on the quantity scikit-learn's solvers stop on: the largest
    entry of the gradient of its *averaged* objective
    ``mean_i L_i + ||w||^2 / (2 C n)`` at ``coef_``, which is
    ``max|grad R(coef_)| / n`` here.  lbfgs, newton-cg and newton-cholesky
    stop when it is below ``tol``; we allow 10 ``tol`` (100 ``tol`` for
    sag/saga, which stop on the change of the weights instead), but never
    less than the float64 precision floor of the problem
    (:func:`precision_floor`): lbfgs also stops when the objective no
    longer decreases in float64, so a very small ``tol`` (1e-10 and below)
    is not reached by a genuine fit.  A
    tolerance on the coefficients themselves cannot separate the cases:
    measured, genuine fits differ from the exact optimum by up to 7e-2
    relative (saga, C=100, ill-conditioned) while a fit with sample
    weights in [0.2, 2] differs by only 4e-2 — but its gradient (6.6e-3)
    is 100x above the genuine fits' (at most 8.5e-5 with tol=1e-4).

    ``state`` is the binary engine's fitted state, ``w`` its coefficients (intercept last), ``v`` the
    estimator's.  Returns ``(gradient in scikit-learn units, max relative difference of the coefficients)``
    where they match.
    """
    st = state
    vt = torch.as_tensor(v, dtype=DTYPE, device=st.w.device)[:, None]
    G, _ = gradient(st.train, st.y[:, None], vt, st.l2)
    g_avg = float(torch.abs(G).max()) / st.train.n
    tol = float(params.get("tol", 1e-4) or 1e-4)
    solver = params.get("solver", "lbfgs")
    floor = precision_floor(st.train, st.y, vt[:, 0], st.l2)
    limit = max((100.0 if solver in ("sag", "saga") else 10.0) * tol, floor)
    rel = float(np.max(np.abs(w - v)) / max(1.0, float(np.max(np.abs(w)))))
    if g_avg > limit:
        n_iter = np.max(getattr(estimator, "n_iter_", [0]))
        early = (f" It also stopped at max_iter={params.get('max_iter')} (n_iter_={n_iter}), so it may not have "
                 "converged." if n_iter >= (params.get("max_iter") or np.inf) else "")
        why = (f"> {limit:.1g}, the float64 precision floor of this problem; tol={tol:g} is below it"
               if floor > 10.0 * tol else f"> {limit:.1g} = {limit / tol:g} x tol")
        raise ValueError(
            f"estimator.coef_ is not the optimum of LogisticRegression(C={params['C']!r}) on the X and y given: "
            f"its gradient is {g_avg:.3g} (scikit-learn units, {why}) and it differs from the optimum by "
            f"{rel:.3g} (max relative).{early} Likely causes: the estimator was fitted on other X/y than passed "
            "here (other rows, order or preprocessing), or with sample_weight, or its parameters were changed "
            "with set_params after fit. Pass the same X, y the estimator was fitted on, or refit it.")
    return g_avg, rel


def split_pipeline(estimator, X):
    """``(preceding steps or None, last step, X through the preceding steps)`` of a fitted Pipeline."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    if not isinstance(estimator, Pipeline):
        return None, estimator, X
    name, last = estimator.steps[-1]
    if not isinstance(last, LogisticRegression):
        raise TypeError(f"the pipeline's last step {name!r} is a {type(last).__name__}; cfdkit audits pipelines that "
                        "end in a sklearn LogisticRegression (L2, binary). Replace that step or audit another model.")
    if not hasattr(last, "coef_"):
        raise ValueError("the pipeline is not fitted; call pipeline.fit(X_raw, y) first.")
    if len(estimator.steps) == 1:
        return None, last, X
    pre = estimator[:-1]
    return pre, last, through(pre, X, "X")


def through(pre, X, name):
    """Raw rows through the pipeline's fitted preceding steps (``transform`` only); one output row per input row."""
    try:
        Xt = pre.transform(X)
    except Exception as exc:  # sklearn raises many types; say where it happened
        raise ValueError(f"{name} could not go through the pipeline's fitted steps "
                         f"({' -> '.join(n for n, _ in pre.steps)}): {type(exc).__name__}: {exc}. Pass raw inputs "
                         "of the kind the pipeline was fitted on (same columns / texts).") from exc
    n_in = len(X) if not hasattr(X, "shape") else X.shape[0]
    if getattr(Xt, "shape", (n_in,))[0] != n_in:
        raise ValueError(f"the pipeline's steps turned {n_in} rows of {name} into {Xt.shape[0]}; cfdkit needs one "
                         "output row per input row to refer results to the raw rows.")
    return Xt


def n_columns(X) -> int:
    shape = getattr(X, "shape", None)
    if shape is not None and len(shape) == 2:
        return int(shape[1])
    arr = np.asarray(X, dtype=object)
    return int(arr.shape[1]) if arr.ndim == 2 else -1




def precision_floor(train, y: torch.Tensor, w: torch.Tensor, l2: float) -> float:
    """The smallest averaged gradient (scikit-learn units) a float64 solver can be asked to reach here.

    scipy's L-BFGS-B (scikit-learn's ``lbfgs``) also stops when one step lowers the averaged objective ``f`` by
    less than ``64 eps max(|f|, 1)``. Near the optimum ``f - f* >= |g|^2 / (2 lam_max)`` (``lam_max`` the largest
    eigenvalue of the averaged Hessian), so that rule can stop at ``|g|`` up to ``sqrt(2 lam_max 64 eps
    max(f, 1))`` however small ``tol`` is. We bound ``lam_max`` by the Frobenius norm (``0.25 ||X~||_F^2 / n +
    l2 / n``) and allow 10 times that gradient: genuine fits with ``tol`` down to 1e-12 pass, while fits on
    other data or with sample weights (gradients of 1e-3 and more) are still refused.
    """
    n = train.n
    X = train.X
    vals = X.values() if X.layout == torch.sparse_csr else X
    lam_max = (0.25 * (float(vals.pow(2).sum()) + n) + l2) / n
    z = train.matvec(w[:, None])[:, 0]
    f = float((torch.nn.functional.softplus(z) - y * z).mean()) + 0.5 * l2 * float(w[:-1].pow(2).sum()) / n
    eps = float(np.finfo(np.float64).eps)
    return 10.0 * float(np.sqrt(2.0 * lam_max * 64.0 * eps * max(abs(f), 1.0)))
