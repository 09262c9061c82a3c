"""n_jobs= through joblib and Dask: chunking never changes a result (issue 14, part 3).

Also the GPU selection path (one pass per block on the device, pending rows finished at the end),
run here on the CPU against the CPU path.
"""
import numpy as np
import pytest
import torch

from cfdkit import RelabelAudit
from cfdkit.core import parallel as par
from cfdkit.linear.units import search_rows
from cfdkit.linear.selection import greedy_sets, greedy_sets_device
from conftest import make_problem

# 10 test rows per score block and 3 refits per verification batch (n=300, p=11): several units
BUDGET = 96_000
# a short minimal search (singles of 3 candidates per row, pairs of 4, few rounds): its units are the score blocks
MIN_KW = dict(max_size=3, singles_limit=0, single_candidates=3, pairs_limit=0, pair_candidates=4, triple_candidates=0,
              max_rounds=2)


def _same_flip(a, b):
    np.testing.assert_array_equal(a.size, b.size)
    np.testing.assert_array_equal(a.offsets, b.offsets)
    np.testing.assert_array_equal(a.flat_indices, b.flat_indices)
    np.testing.assert_array_equal(a.flat_effects, b.flat_effects)  # bit for bit
    np.testing.assert_array_equal(a.prob, b.prob)
    assert a.fingerprint == b.fingerprint


def _same_minimal(a, b):
    for f in ("size", "status", "lower_bound", "one_minimal", "offsets", "flat_indices", "estimated_size", "prob"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f), err_msg=f)
    np.testing.assert_array_equal(a.new_prob, b.new_prob)
    assert a.fingerprint == b.fingerprint


# ----------------------------------------------------------------------------------- helpers
def test_check_n_jobs():
    assert par.check_n_jobs(None) is None
    assert par.check_n_jobs(-1) == -1 and par.check_n_jobs(np.int64(3)) == 3
    with pytest.raises(ValueError, match="n_jobs=0"):
        par.check_n_jobs(0)
    for v in (True, 1.0, "2", [2]):
        with pytest.raises(TypeError, match="n_jobs must be None or a nonzero int"):
            par.check_n_jobs(v)


def test_unit_runs_cover_every_unit_once():
    for n_units in range(0, 23):
        for workers in (1, 2, 3, 8, 40):
            runs = par.unit_runs(n_units, workers)
            covered = [u for a, b in runs for u in range(a, b)]
            assert covered == list(range(n_units))
            assert len(runs) <= max(1, min(workers, n_units)) if n_units else runs == []


# ------------------------------------------------------------------------------- Dask cluster
@pytest.fixture(scope="module")
def dask_client():
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    client = distributed.Client(cluster)
    yield client
    client.close()
    cluster.close()


@pytest.mark.parametrize("sparse", [False, True])
def test_dask_cluster_same_bits(dask_client, sparse):
    """flip_sets, verify (and minimal_sets, dense) on a 2-process LocalCluster == one process, bit for bit."""
    from joblib import parallel_backend

    X, y, Xt, _ = make_problem(n=300, d=10, n_test=30, seed=3, sparse=sparse)
    a = RelabelAudit(l2=1.0, device="cpu", memory_budget=BUDGET).fit(X, y)
    one_fs = a.flip_sets(Xt)
    one_ver = a.verify(one_fs)
    one_min = a.minimal_sets(Xt[:20], **MIN_KW) if not sparse else None
    assert one_fs.found.sum() >= 6  # several refit batches of 3
    # what one scatter of the state costs in serializations (distributed may try pickle, then cloudpickle)
    before = par.Shipped.pickles
    dask_client.scatter(par.Shipped(a), hash=False)
    per_scatter = par.Shipped.pickles - before
    assert per_scatter >= 1
    before = par.Shipped.pickles
    with parallel_backend("dask"):
        assert par.effective_workers(None) == 2
        fs = a.flip_sets(Xt)
        shipped_flip = par.Shipped.pickles - before
        ver = a.verify(fs)
        mn = a.minimal_sets(Xt[:20], **MIN_KW) if not sparse else None
    # the fitted state left this process once per call (scattered), not once per chunk
    assert shipped_flip == per_scatter
    assert par.Shipped.pickles - before == (2 if sparse else 3) * per_scatter
    _same_flip(one_fs, fs)
    for f in ("flipped", "new_prob", "grad_norm", "converged", "predicted_delta", "actual_delta"):
        np.testing.assert_array_equal(getattr(one_ver, f), getattr(ver, f), err_msg=f)
    assert ver.fingerprint == one_ver.fingerprint
    if not sparse:
        _same_minimal(one_min, mn)


# ----------------------------------------------------------------- GPU selection path, on the CPU
@pytest.mark.parametrize("k0", [1, 3, 16, 256])
def test_device_selection_matches_cpu_selection(k0):
    rng = np.random.default_rng(k0)
    for trial in range(12):
        c, n = int(rng.integers(1, 40)), int(rng.integers(1, 900))
        E = torch.from_numpy(rng.normal(size=(c, n)) * rng.uniform(1e-4, 1e-2))
        if trial % 3 == 0:  # many exact ties
            E = torch.round(E * 2000) / 2000
        p = torch.from_numpy(rng.uniform(0.2, 0.8, size=c))
        tau = float(rng.uniform(0.3, 0.7))
        sizes, sets, deltas = greedy_sets(E.clone(), p, tau, k0=k0)
        size, idx, eff, pending = greedy_sets_device(E.clone(), p, tau, k0=k0)
        assert idx.shape == eff.shape == (c, min(k0, n))
        for r in range(c):
            if bool(pending[r]):  # finished later by greedy_sets; reported as 0 here
                assert int(size[r]) == 0
                continue
            k = int(size[r])
            assert k == sizes[r]
            np.testing.assert_array_equal(idx[r, :k].numpy(), sets[r])
            np.testing.assert_array_equal(eff[r, :k].numpy(), deltas[r])


@pytest.mark.parametrize("n", [300, 1500])  # full sort (4 W >= n) and top-k pass with pending rows
def test_device_search_path_matches_cpu_path(n):
    X, y, Xt, _ = make_problem(n=n, d=12, n_test=25, seed=5, noise=2.0)
    a = RelabelAudit(l2=0.3, device="cpu", memory_budget=8 * 4 * n * 10).fit(X, y)
    D = a._test_design(Xt)
    sig = torch.sigmoid(D.matvec(a.state_.w))
    step = a._block_rows(D.n)
    s_cpu, d_cpu, _ = search_rows(a.engine_, D, sig, step, "ip_relabel", ("relabel",), device_path=False)
    s_dev, d_dev, _ = search_rows(a.engine_, D, sig, step, "ip_relabel", ("relabel",), device_path=True)
    assert max(len(s) for s in s_cpu) > 0
    for r in range(D.n):
        np.testing.assert_array_equal(s_cpu[r], s_dev[r])
        # rows the device pass leaves pending are rescored in another block shape: effects agree to round-off
        np.testing.assert_allclose(d_cpu[r], d_dev[r], rtol=1e-12, atol=0)


def test_device_path_row_blocks_of_a_csr_design():
    """The device path slices a torch CSR design by its row pointer: same dense rows as Design.rows."""
    from cfdkit.core.arrays import Design, to_torch_matrix
    from cfdkit.linear.pipelining import row_block

    _, _, Xt, _ = make_problem(n=50, d=30, n_test=37, seed=2, sparse=True)
    T = to_torch_matrix(Xt, torch.device("cpu"))
    D = Design(T)  # a CSR design without the scipy view, as on a GPU
    crow = T.crow_indices().numpy()
    for s, e in [(0, 37), (0, 5), (5, 19), (36, 37)]:
        got = row_block(D, s, e, crow).dense_rows()
        want = torch.from_numpy(np.hstack([Xt[s:e].toarray(), np.ones((e - s, 1))]))
        assert torch.equal(got, want)


def test_one_steering_for_every_chunk():
    """verify(n_jobs=2) == one process where the whole call pays for the explicit inverse of H0 and one
    chunk alone would not: the choice is made once per call and handed to every chunk."""
    from joblib import parallel_backend

    from cfdkit.linear.retrain import members_per_batch, refit_sets, use_explicit_inverse

    X, y, Xt, _ = make_problem(n=300, d=60, n_test=40, seed=5)
    a = RelabelAudit(l2=1.0, device="cpu", memory_budget=110_000).fit(X, y)
    st = a.state_
    fs = a.flip_sets(Xt)
    rows = np.nonzero(fs.found)[0]
    bs = members_per_batch(st)
    assert bs == 3 and rows.size >= 6
    assert use_explicit_inverse(st, rows.size) and not use_explicit_inverse(st, bs)
    sets = [fs.indices(i) for i in rows]
    # the two steerings reach the same optimum but not the same bits: the test below can fail
    W_exp, i_exp = refit_sets(st, sets, explicit_inverse=True)
    W_tri, i_tri = refit_sets(st, sets, explicit_inverse=False)
    assert i_exp.converged.all() and i_tri.converged.all()
    assert not torch.equal(W_exp, W_tri) and float((W_exp - W_tri).abs().max()) < 1e-8
    one = a.verify(fs)
    with parallel_backend("threading"):
        two = a.verify(fs, n_jobs=2)
    for f in ("flipped", "new_prob", "grad_norm", "converged"):
        np.testing.assert_array_equal(getattr(one, f), getattr(two, f), err_msg=f)


def test_sparse_design_pickles_quietly_without_caches():
    """What a joblib/Dask worker receives: a sparse Design rebuilt without torch's CSR "beta" warning,
    without the derived caches, with ``S`` a view of ``X`` again, and products bit for bit the same."""
    import pickle
    import warnings

    import scipy.sparse as sp

    from cfdkit.core.arrays import Design

    A = sp.random(60, 40, density=0.15, format="csr", random_state=3)
    d = Design.from_scipy(A, torch.device("cpu"))
    g = torch.Generator().manual_seed(0)
    W = torch.randn(41, 6, dtype=torch.float64, generator=g)
    R = torch.randn(60, 6, dtype=torch.float64, generator=g)
    z, r = d.matvec(W), d.rmatvec(R)  # fills the torch-CSR caches (>= 4 columns)
    assert hasattr(d, "_tcsr") and hasattr(d, "_tcsrT")
    blob = pickle.dumps(d)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning while rebuilding fails the test
        d2 = pickle.loads(blob)
    assert not hasattr(d2, "_tcsr") and not hasattr(d2, "_tcsrT")
    assert np.shares_memory(d2.S.data, d2.X.values().numpy())
    assert torch.equal(d2.matvec(W), z) and torch.equal(d2.rmatvec(R), r)
    assert torch.equal(d2.matvec(W[:, 0]), d.matvec(W[:, 0]))
    # the caches and the scipy view are not sent: smaller than sending them
    assert len(blob) < len(pickle.dumps(d.__dict__))


@pytest.mark.parametrize("m", [1, 3, 4, 63, 64, 65, 200])
def test_cpu_sparse_products_equal_scipy_bit_for_bit(m):
    """Design's CPU sparse products (scipy below 4 columns, torch's CSR kernel in 64-column tiles above)
    give exactly scipy's numbers, so the choice of kernel and tile never changes an answer."""
    import scipy.sparse as sp

    from cfdkit.core.arrays import Design

    A = sp.random(300, 150, density=0.05, format="csr", random_state=m)
    A.data = np.round(A.data * 8) / 8 + 0.1  # values like binary/count features, and not all equal
    d = Design.from_scipy(A, torch.device("cpu"))
    g = torch.Generator().manual_seed(m)
    W = torch.randn(151, m, dtype=torch.float64, generator=g)
    R = torch.randn(300, m, dtype=torch.float64, generator=g)
    want_z = torch.from_numpy(np.asarray(A @ W[:-1].numpy())) + W[-1]
    want_r = torch.from_numpy(np.asarray(A.T.tocsr() @ R.numpy()))
    assert torch.equal(d.matvec(W), want_z)
    assert torch.equal(d.rmatvec(R)[:-1], want_r)
