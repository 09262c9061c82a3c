"""Algorithm 1: the vectorized, chunked, top-k search equals the paper's per-point loop."""
import numpy as np
import pytest
import torch

from cfdkit import RelabelAudit
from cfdkit.linear.selection import greedy_sets
from conftest import make_problem


def algorithm1_reference(delta, prob, tau):
    """Algorithm 1 exactly as printed: sort by direction, scan prefixes of the whole training set."""
    y_hat = prob > tau
    order = np.argsort(delta, kind="stable") if y_hat else np.argsort(-delta, kind="stable")
    cs = prob + np.cumsum(delta[order])
    for k in range(len(delta)):
        if (cs[k] > tau) != y_hat:
            return order[: k + 1]
    return np.empty(0, dtype=np.int64)


@pytest.mark.parametrize("tau", [0.25, 0.5, 0.7])
def test_matches_reference_loop(tau):
    X, y, Xt, _ = make_problem(n=500, d=6, n_test=60, seed=2)
    a = RelabelAudit(l2=1.0, threshold=tau, device="cpu").fit(X, y)
    res = a.flip_sets(Xt)
    S = a.scores(Xt)
    n_found = 0
    for t in range(len(Xt)):
        ref = algorithm1_reference(S[t], res.prob[t], tau)
        assert res.size[t] == len(ref)
        # same set (ordering of exact ties may differ; there are none in continuous data)
        np.testing.assert_array_equal(res.indices(t), ref)
        n_found += len(ref) > 0
        if len(ref):
            # the predicted probability crossed, the prefix one shorter did not
            path = res.path(t)
            assert (path[-1] > tau) != (res.prob[t] > tau)
            assert (path[-2] > tau) == (res.prob[t] > tau)
    assert 0 < n_found < len(Xt)  # the fixture exercises both outcomes


def test_both_directions_and_zero_where_no_set():
    X, y, Xt, _ = make_problem(n=400, d=4, n_test=80, seed=4, noise=0.2)
    res = RelabelAudit(l2=5.0, device="cpu").fit(X, y).flip_sets(Xt)
    pred = res.predicted_label
    assert res.found[pred == 1].any() and res.found[pred == 0].any()
    assert (~res.found).any()
    assert np.all(np.isnan(res.predicted_prob[~res.found]))
    for i in np.nonzero(~res.found)[0]:
        assert res.indices(i).size == 0


def test_topk_pass_and_full_sort_agree():
    """Long sets force the fall-back from the first top-k pass to a wider search."""
    g = torch.Generator().manual_seed(0)
    eff = -torch.rand(7, 5000, generator=g, dtype=torch.float64) * 1e-3
    prob = torch.full((7,), 0.9, dtype=torch.float64)
    prob[0] = 0.5001  # short set
    sizes_small_k, sets_a, _ = greedy_sets(eff, prob, 0.5, k0=4)
    sizes_big_k, sets_b, _ = greedy_sets(eff, prob, 0.5, k0=5000)
    np.testing.assert_array_equal(sizes_small_k, sizes_big_k)
    assert sizes_small_k[0] < 4 < sizes_small_k[1]
    for a, b in zip(sets_a, sets_b):
        np.testing.assert_array_equal(a, b)


def test_ties_broken_by_lower_index():
    eff = torch.tensor([[-0.1, -0.2, -0.2, -0.2, 0.0]], dtype=torch.float64)
    sizes, sets, _ = greedy_sets(eff, torch.tensor([0.8], dtype=torch.float64), 0.5, k0=2)
    assert sizes[0] == 2
    np.testing.assert_array_equal(sets[0], [1, 2])


def test_strict_inequality_at_threshold():
    """prob <= tau is class 0; to flip it the estimate must exceed tau strictly."""
    eff = torch.tensor([[0.1, 0.1]], dtype=torch.float64)
    sizes, _, _ = greedy_sets(eff, torch.tensor([0.3], dtype=torch.float64), 0.5)
    assert sizes[0] == 0  # 0.3 + 0.2 == 0.5 is not > 0.5
    sizes, _, _ = greedy_sets(-eff, torch.tensor([0.7], dtype=torch.float64), 0.5)
    assert sizes[0] == 2  # 0.7 - 0.2 <= 0.5 flips class 1


def test_memory_budget_does_not_change_sets():
    X, y, Xt, _ = make_problem(n=700, d=5, n_test=50, seed=9)
    big = RelabelAudit(l2=1.0, device="cpu").fit(X, y).flip_sets(Xt)
    tiny = RelabelAudit(l2=1.0, device="cpu", memory_budget=8 * 4 * 700 * 3).fit(X, y)
    assert tiny._block_rows(len(Xt)) == 3
    res = tiny.flip_sets(Xt)
    np.testing.assert_array_equal(res.size, big.size)
    np.testing.assert_array_equal(res.flat_indices, big.flat_indices)


def test_same_inputs_same_sets_bit_for_bit(sparse_problem):
    X, y, Xt, _ = sparse_problem
    r1 = RelabelAudit(l2=0.5, device="cpu").fit(X, y).flip_sets(Xt)
    r2 = RelabelAudit(l2=0.5, device="cpu").fit(X, y).flip_sets(Xt)
    np.testing.assert_array_equal(r1.flat_indices, r2.flat_indices)
    assert r1.flat_effects.tobytes() == r2.flat_effects.tobytes()
    assert r1.prob.tobytes() == r2.prob.tobytes()


def test_result_accessors_and_frame(dense_problem):
    X, y, Xt, _ = dense_problem
    res = RelabelAudit(l2=1.0, device="cpu").fit(X, y).flip_sets(Xt)
    assert res.size.dtype == np.int64 and res.prob.dtype == np.float64 and res.size.shape == (len(Xt),)
    i = int(np.argmax(res.size))
    assert res.indices(i).dtype == np.int64 and len(res.indices(i)) == res.size[i]
    assert res.indices(-1).shape == (res.size[-1],)
    df = res.to_frame()
    assert list(df["estimated_size"]) == list(res.size) and len(df) == len(Xt)
    with pytest.raises(IndexError):
        res.indices(len(Xt))
    with pytest.raises(TypeError):
        res.indices(1.5)
