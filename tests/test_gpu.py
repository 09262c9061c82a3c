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
