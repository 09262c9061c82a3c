"""The four inverse-Hessian solvers against the explicit Cholesky solve."""
import warnings

import numpy as np
import pytest
import torch

from cfdkit import InverseHVP, LinearOperator, RelabelAudit, SolverConvergenceWarning
from cfdkit.linear.model import hessian
from cfdkit.core.solvers import lissa_error_bound
from conftest import make_problem


@pytest.fixture(scope="module")
def problem():
    X, y, Xt, _ = make_problem(n=800, d=25, n_test=30, seed=3)
    a = RelabelAudit(l2=1.0, device="cpu").fit(X, y)
    H = hessian(a.state_.train, a.state_.w, 1.0)
    g = torch.Generator().manual_seed(0)
    B = torch.randn(H.shape[0], 6, generator=g, dtype=torch.float64)
    return X, y, Xt, a, H, B


def rel_err(x, ref):
    return float((torch.linalg.vector_norm(x - ref, dim=0) / torch.linalg.vector_norm(ref, dim=0)).max())


def test_cholesky_exact_with_diagnostics(problem):
    *_, H, B = problem
    res = InverseHVP("cholesky").fit(H).solve(B)
    ref = torch.linalg.solve(H, B)
    assert rel_err(res.x, ref) < 1e-12
    d = res.diagnostics
    assert d.positive_definite and d.converged
    true_cond = float(np.linalg.cond(H.numpy(), 1))  # the CPU estimate is LAPACK's 1-norm estimator
    assert true_cond / 3 < d.condition_estimate <= true_cond * 1.0001


def test_cholesky_rejects_indefinite():
    H = torch.diag(torch.tensor([1.0, -1.0, 2.0], dtype=torch.float64))
    with pytest.raises(ValueError, match="not positive definite"):
        InverseHVP("cholesky").fit(H)


def test_cg_matches_cholesky_to_1e6(problem):
    *_, H, B = problem
    ref = InverseHVP("cholesky").fit(H).solve(B).x
    res = InverseHVP("cg", tol=1e-8).fit(H).solve(B)
    assert rel_err(res.x, ref) < 1e-6
    assert res.diagnostics.converged
    assert (res.diagnostics.residual_norms <= 1e-7).all()
    assert res.diagnostics.iterations.shape == (6,) and (res.diagnostics.iterations > 0).all()


def test_cg_on_matrix_free_operator(problem):
    *_, H, B = problem
    op = LinearOperator(lambda V: H @ V, H.shape, diagonal=lambda: torch.diagonal(H))
    ref = torch.linalg.solve(H, B)
    assert rel_err(InverseHVP("cg", tol=1e-10).fit(op).solve(B).x, ref) < 1e-8


def test_cg_nonconvergence_warns_and_reports(problem):
    *_, H, B = problem
    with pytest.warns(SolverConvergenceWarning, match="did not converge"):
        res = InverseHVP("cg", tol=1e-12, maxiter=2).fit(H).solve(B)
    assert not res.diagnostics.converged
    assert (res.diagnostics.iterations == 2).all()
    assert res.diagnostics.residual_norms.max() > 1e-12


def test_lissa_meets_its_documented_bound(problem):
    *_, H, B = problem
    ref = torch.linalg.solve(H, B)
    ev = torch.linalg.eigvalsh(H)
    for iters in (20, 200):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SolverConvergenceWarning)
            solver = InverseHVP("lissa", tol=1e-15, maxiter=iters).fit(H)
            res = solver.solve(B)
        bound = lissa_error_bound(float(ev.min()), solver.scale_, iters)
        assert rel_err(res.x, ref) <= bound * 1.0001
    res = InverseHVP("lissa", tol=1e-9).fit(H).solve(B)
    assert res.diagnostics.converged and rel_err(res.x, ref) < 1e-7


def test_lissa_stopped_at_cap_warns(problem):
    *_, H, B = problem
    with pytest.warns(SolverConvergenceWarning):
        res = InverseHVP("lissa", tol=1e-10, maxiter=5).fit(H).solve(B)
    assert not res.diagnostics.converged and (res.diagnostics.iterations == 5).all()


def test_arnoldi_full_rank_is_exact(problem):
    *_, H, B = problem
    p = H.shape[0]
    res = InverseHVP("arnoldi", rank=p, n_iter=p).fit(H).solve(B)
    assert rel_err(res.x, torch.linalg.solve(H, B)) < 1e-8
    np.testing.assert_allclose(res.diagnostics.captured, 1.0, atol=1e-8)


def test_arnoldi_truncated_equals_top_eigen_projection(problem):
    """Documented accuracy: rank r keeps exactly the top-r eigen-directions."""
    *_, H, B = problem
    p, r = H.shape[0], 8
    res = InverseHVP("arnoldi", rank=r, n_iter=p).fit(H).solve(B)
    ev, U = torch.linalg.eigh(H)
    Ur, lr = U[:, -r:], ev[-r:]
    proj = Ur @ ((Ur.T @ B) / lr[:, None])
    assert rel_err(res.x, proj) < 1e-6
    assert (res.diagnostics.captured < 1).all()


@pytest.mark.parametrize("solver, opts", [("cg", {"tol": 1e-10}), ("lissa", {"tol": 1e-10}),
                                          ("arnoldi", {"rank": 26, "n_iter": 26})])
def test_flip_sets_agree_across_solvers(problem, solver, opts):
    X, y, Xt, ref_audit, _, _ = problem
    ref = ref_audit.flip_sets(Xt)
    a = RelabelAudit(l2=1.0, solver=solver, solver_options=opts, device="cpu").fit(X, y)
    res = a.flip_sets(Xt)
    np.testing.assert_array_equal(res.size, ref.size)
    np.testing.assert_allclose(a.scores(Xt), ref_audit.scores(Xt), atol=1e-7)


def test_truncated_arnoldi_changes_sets_and_says_so(problem):
    """A low-rank Arnoldi gives different (worse) sets; diagnostics show the truncation."""
    X, y, Xt, ref_audit, _, _ = problem
    ref = ref_audit.flip_sets(Xt)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SolverConvergenceWarning)
        a = RelabelAudit(l2=1.0, solver="arnoldi", solver_options={"rank": 3, "n_iter": 26}, device="cpu").fit(X, y)
        res = a.flip_sets(Xt)
    assert "rank 3 of 26" in res.diagnostics.message
    assert not np.array_equal(res.size, ref.size)


def test_bad_solver_arguments():
    with pytest.raises(ValueError, match="solver"):
        InverseHVP("newton")
    with pytest.raises(ValueError, match="tol"):
        InverseHVP("cg", tol=0)
    with pytest.raises(RuntimeError, match="fit"):
        InverseHVP("cg").solve(torch.ones(3))
    with pytest.raises(ValueError, match="square"):
        InverseHVP("cg").fit(torch.ones(3, 2))
