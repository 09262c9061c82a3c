"""Memory stays bounded (N=200,000, p=100, 2,000 test points < 2 GB peak RSS): flip sets, then verification.

The default ``memory_budget="auto"`` (a quarter of the free memory, at most 1 GiB) sizes the score blocks
and the batches of verification refits."""
import os
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent("""
    import resource, numpy as np
    from cfdkit import RelabelAudit
    rng = np.random.default_rng(0)
    N, p, T = 200_000, 100, 2_000
    X = rng.normal(size=(N, p))
    w = rng.normal(size=p) / np.sqrt(p)
    y = (X @ w + rng.normal(size=N) > 0).astype(np.int64)
    Xt = rng.normal(size=(T, p)) * 0.05
    a = RelabelAudit(l2=1.0, device="cpu").fit(X, y)
    res = a.flip_sets(Xt)
    ver = a.verify(a.flip_sets(Xt[:16]))
    print("FOUND", int(res.found.sum()), "VERIFIED", int((ver.flip_known & ver.sets.found).sum()), "BUDGET_MB", a.memory_budget_ >> 20,
          "MAXRSS_KB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
""")


def test_large_problem_under_2gb():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr
    words = out.stdout.split()
    found, rss_kb = int(words[words.index("FOUND") + 1]), int(words[words.index("MAXRSS_KB") + 1])
    # the full score matrix alone would be 200,000 x 2,000 x 8 B = 3.2 GB
    assert rss_kb < 2 * 1024 * 1024, f"peak RSS {rss_kb / 1024:.0f} MB"
    assert found > 0
    assert int(words[words.index("VERIFIED") + 1]) > 0
    assert 16 <= int(words[words.index("BUDGET_MB") + 1]) <= 1024
