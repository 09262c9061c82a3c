"""GPU path: same sets as the CPU (skipped where there is no CUDA device)."""
import numpy as np
import pytest
import torch

from cfdkit import RelabelAudit
from conftest import make_problem

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")


@pytest.mark.gpu
@pytest.mark.parametrize("sparse", [False, True])
def test_gpu_matches_cpu(sparse):
    X, y, Xt, _ = make_problem(n=800, d=50, n_test=40, sparse=sparse, seed=2)
    cpu = RelabelAudit(l2=1.0, device="cpu").fit(X, y)
    gpu = RelabelAudit(l2=1.0, device="cuda").fit(X, y)
    np.testing.assert_allclose(gpu.coef_, cpu.coef_, atol=1e-9)
    rc, rg = cpu.flip_sets(Xt), gpu.flip_sets(Xt)
    np.testing.assert_array_equal(rc.size, rg.size)
    vc, vg = cpu.verify(rc), gpu.verify(rg)
    np.testing.assert_array_equal(vc.flipped, vg.flipped)
    np.testing.assert_allclose(vc.new_prob, vg.new_prob, atol=1e-9, equal_nan=True)


@pytest.mark.gpu
def test_cupy_in_zero_copy():
    """CuPy float64 arrays go in through DLPack without a host round trip: same device pointer (issue 14)."""
    cupy = pytest.importorskip("cupy")
    from cfdkit.core.arrays import to_torch_matrix

    X, y, Xt, _ = make_problem(n=600, d=8, n_test=40, seed=0)
    Xc = cupy.asarray(X, dtype=cupy.float64)
    T = to_torch_matrix(Xc, torch.device("cuda"))
    assert T.is_cuda and T.data_ptr() == Xc.data.ptr  # the very same device buffer
    assert T.shape == Xc.shape
    Xc[0, 0] += 1.0  # a view, not a copy: the change is visible through the tensor
    assert float(T[0, 0]) == float(Xc[0, 0])
    Xc[0, 0] -= 1.0
    a = RelabelAudit(l2=1.0, device="cuda").fit(Xc, y)
    ref = RelabelAudit(l2=1.0, device="cpu").fit(X, y)
    np.testing.assert_allclose(a.coef_, ref.coef_, atol=1e-9)
    np.testing.assert_array_equal(a.flip_sets(cupy.asarray(Xt)).size, ref.flip_sets(Xt).size)


@pytest.mark.gpu
@pytest.mark.parametrize("n", [300, 3000])  # full sort per block, and top-k with pending rows
def test_gpu_device_path_matches_cpu_sets(n):
    """The device selection path (one copy at the end) gives the CPU's sets."""
    X, y, Xt, _ = make_problem(n=n, d=20, n_test=60, seed=4, noise=2.0)
    cpu = RelabelAudit(l2=0.3, device="cpu").fit(X, y).flip_sets(Xt)
    gpu = RelabelAudit(l2=0.3, device="cuda").fit(X, y).flip_sets(Xt)
    np.testing.assert_array_equal(cpu.size, gpu.size)
    np.testing.assert_array_equal(cpu.flat_indices, gpu.flat_indices)
    np.testing.assert_allclose(cpu.flat_effects, gpu.flat_effects, rtol=1e-8, atol=1e-14)
