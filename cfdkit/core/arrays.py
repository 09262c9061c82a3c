"""Array plumbing: devices, conversion to torch, and the design matrix.

Everything numeric in cfdkit runs in torch, float64, on the device the user
asks for.  This module is the one place where user arrays (numpy,
scipy.sparse, pandas, torch, CuPy) become torch tensors, and where the
intercept column is folded in without ever densifying a sparse matrix.
"""

from __future__ import annotations

import numbers
import warnings
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

DTYPE = torch.float64



def csr(crow, col, val, size) -> torch.Tensor:
    """Build a torch sparse CSR tensor quietly.

    torch warns that CSR support is "beta" and that invariant checks are off;
    the tensors built here come from canonical (sorted, deduplicated) CSR
    structure, so neither warning is actionable for users.
    """
    with quiet_sparse():
        return torch.sparse_csr_tensor(crow, col, val, size=size, check_invariants=False)


class quiet_sparse(warnings.catch_warnings):
    """Context manager silencing torch's sparse-CSR beta warnings."""

    def __enter__(self):
        out = super().__enter__()
        warnings.filterwarnings("ignore", message=".*[Ss]parse.*", category=UserWarning)
        return out


def resolve_device(device=None) -> torch.device:
    """Return the torch device to compute on (the one resolver of every model family).

    ``None`` picks CUDA when a GPU is present, else the CPU.  Strings, ``torch.device``
    objects and plain ints (a CUDA index, as ``torch.device(0)``) naming the CPU or a
    present CUDA device are passed through.

    Raises
    ------
    TypeError
        ``device`` of another type (``bool``, ``float``, a list, ...).
    ValueError
        Not a device name, a device type other than CPU/CUDA (``"mps"``, ``"meta"``, ...),
        CUDA requested where there is none, or a CUDA index beyond the GPUs present; the
        message says what is available.
    """
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if isinstance(device, (bool, np.bool_)) or not isinstance(device, (str, torch.device, numbers.Integral)):
        raise TypeError(f"device must be None, a str such as 'cpu', 'cuda' or 'cuda:<index>', a torch.device or "
                        f"a CUDA index; got {type(device).__name__} {device!r}.")
    if isinstance(device, numbers.Integral):  # a CUDA index, as torch.device(0)
        if int(device) < 0:
            raise ValueError(f"device={device!r} is a negative CUDA index; use None, 'cpu', 'cuda' or 'cuda:<index>'.")
        spec = f"cuda:{int(device)}"
    else:
        spec = device
    try:
        dev = torch.device(spec)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise ValueError(f"device={device!r} is not a torch device; use None, 'cpu', 'cuda' or 'cuda:<index>'.") from exc
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device={device!r} asks for CUDA but no CUDA device is available; use device='cpu' or None.")
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            raise ValueError(f"device={device!r} asks for CUDA device {dev.index} but only {count} "
                             f"{'is' if count == 1 else 'are'} present (indices 0..{count - 1}); "
                             "use device='cuda' or 'cuda:0'.")
        return dev
    if dev.type != "cpu":
        raise ValueError(f"device={device!r} is not supported: cfdkit computes on the CPU or on CUDA "
                         "GPUs; use device='cpu', 'cuda' or None.")
    return dev


def _is_cupy(x) -> bool:
    return type(x).__module__.split(".")[0] == "cupy"


def _scipy_to_torch_csr(A: sp.spmatrix, device: torch.device) -> torch.Tensor:
    A = sp.csr_matrix(A, dtype=np.float64)
    A.sum_duplicates()
    A.sort_indices()
    return csr(
        torch.from_numpy(A.indptr.astype(np.int64)),
        torch.from_numpy(A.indices.astype(np.int64)),
        torch.from_numpy(A.data),
        A.shape,
    ).to(device)


def to_torch_matrix(X, device: torch.device, name: str = "X") -> torch.Tensor:
    """Convert a 2-D array-like to a float64 torch tensor on ``device``.

    Dense inputs give a dense (strided) tensor; scipy.sparse and torch sparse
    inputs give a sparse CSR tensor, never a dense copy.
    """
    if sp.issparse(X):
        return _scipy_to_torch_csr(X, device)
    if isinstance(X, torch.Tensor):
        if X.layout == torch.strided:
            return X.detach().to(device=device, dtype=DTYPE)
        with quiet_sparse():
            if X.layout == torch.sparse_coo:
                X = X.coalesce().to_sparse_csr()
            elif X.layout != torch.sparse_csr:
                X = X.to_sparse_csr()
        return X.to(device=device, dtype=DTYPE)
    if _is_cupy(X):
        # zero-copy through DLPack; float64 conversion copies only if needed
        return torch.from_dlpack(X).to(device=device, dtype=DTYPE)
    if hasattr(X, "to_numpy") and hasattr(X, "columns"):  # pandas DataFrame
        try:
            X = X.to_numpy(dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise TypeError(
                f"{name} has non-numeric columns; encode them first (for example with "
                "cfdkit.data.features.tabular_features or pandas.get_dummies)."
            ) from exc
    try:
        arr = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"{name} must be a numeric 2-D array (numpy, scipy.sparse, pandas, torch or CuPy); "
            f"got {type(X).__name__} that cannot be converted to float64."
        ) from exc
    return torch.from_numpy(np.ascontiguousarray(arr)).to(device)


def to_numpy(t) -> np.ndarray:
    if isinstance(t, torch.Tensor):
        return t.detach().cpu().numpy()
    return np.asarray(t)


_TORCH_CSR_MIN_COLS = 4  # CPU sparse products with at least this many columns use torch's CSR kernel
_TORCH_CSR_TILE = 64     # ... in column tiles of at most this many (see Design._csr_product)


def _torch_csr_to_scipy(X: torch.Tensor) -> sp.csr_matrix:
    return sp.csr_matrix(
        (X.values().numpy(), X.col_indices().numpy(), X.crow_indices().numpy()), shape=tuple(X.shape)
    )


@dataclass
class Design:
    """A training or test design matrix with the intercept folded in.

    ``X~ = [X, 1]`` is never materialized: products split into the feature
    part and the intercept part, so sparse matrices stay sparse.  Parameter
    vectors ``w`` have length ``p + 1`` with the intercept last.

    Sparse products run on cuSPARSE through torch on a GPU.  On the CPU a
    product with one (or a few) columns runs through scipy.sparse on zero-copy
    numpy views of the same buffers (torch's CPU CSR kernel is slower for
    vectors: 0.20 vs 0.12 ms for one hate-speech product, 1 thread), and a
    product with ``>= _TORCH_CSR_MIN_COLS`` columns through torch's CSR kernel,
    which uses every torch thread (2-3x faster than scipy with 2 threads at
    16-256 columns, 2026-11-28).  Both give bit-identical results (same
    summation order per output entry; checked for 1-300 columns and 1-2
    threads), so the choice never changes an answer.

    Attributes
    ----------
    X : torch.Tensor, (n, p), dense or sparse CSR float64
    XT : torch.Tensor or None, (p, n), the transpose as CSR (sparse X on a GPU)
    """

    X: torch.Tensor
    XT: torch.Tensor | None = None
    S: sp.csr_matrix | None = None  # CPU sparse: scipy view of X
    ST: sp.csr_matrix | None = None  # CPU sparse: X.T as CSR

    _CACHES = ("_tcsr", "_tcsrT", "_ST_sq", "_XT_sq")

    def __getstate__(self):
        """Pickle (joblib / Dask workers) without derived caches and with sparse tensors as their parts.

        Caches are rebuilt on first use; the scipy view ``S`` of a CPU CSR ``X`` is not sent twice; CSR
        tensors travel as (crow, col, values, shape) and are rebuilt quietly (unpickling a CSR tensor
        itself makes torch print its "beta" warning in every worker).
        """
        state = {k: v for k, v in self.__dict__.items() if k not in self._CACHES}
        for key in ("X", "XT"):
            t = state.get(key)
            if isinstance(t, torch.Tensor) and t.layout == torch.sparse_csr:
                state[key] = ("csr", t.crow_indices(), t.col_indices(), t.values(), tuple(t.shape))
        if self.S is not None and self.X.layout == torch.sparse_csr and self.X.device.type == "cpu":
            state["S"] = "view of X"
        return state

    def __setstate__(self, state):
        for key in ("X", "XT"):
            t = state.get(key)
            if isinstance(t, tuple) and t and t[0] == "csr":
                state[key] = csr(*t[1:4], size=t[4])
        if isinstance(state.get("S"), str):
            state["S"] = _torch_csr_to_scipy(state["X"])
        self.__dict__.update(state)

    def to_plain(self):
        """The feature matrix as plain host data: numpy float64 (n, p) or scipy.sparse CSR (n, p)."""
        if self.S is not None:
            return self.S
        if self.X.layout == torch.sparse_csr:
            return _torch_csr_to_scipy(self.X.cpu())
        return self.X.detach().cpu().numpy()

    @classmethod
    def from_tensor(cls, X: torch.Tensor) -> "Design":
        if X.layout == torch.sparse_csr:
            if X.device.type == "cpu":
                S = _torch_csr_to_scipy(X)
                return cls(X, None, S, S.T.tocsr())
            with quiet_sparse():
                XT = X.to_sparse_coo().t().coalesce().to_sparse_csr()
            return cls(X, XT)
        return cls(X, None)

    @classmethod
    def from_scipy(cls, S: sp.csr_matrix, device: torch.device) -> "Design":
        return cls.from_tensor(_scipy_to_torch_csr(S, device))

    @property
    def sparse(self) -> bool:
        return self.X.layout == torch.sparse_csr

    @property
    def n(self) -> int:
        return int(self.X.shape[0])

    @property
    def p(self) -> int:
        """Number of parameters, intercept included."""
        return int(self.X.shape[1]) + 1

    @property
    def device(self) -> torch.device:
        return self.X.device

    def _torch_csr(self, transpose: bool) -> torch.Tensor:
        """CPU: ``X`` (or ``X.T``) as a torch CSR tensor over the scipy buffers (built once, zero copy)."""
        key = "_tcsrT" if transpose else "_tcsr"
        if not hasattr(self, key):
            A = self.ST if transpose else self.S
            with quiet_sparse():
                setattr(self, key, csr(torch.from_numpy(A.indptr), torch.from_numpy(A.indices),
                                       torch.from_numpy(A.data), A.shape))
        return getattr(self, key)

    def _csr_product(self, transpose: bool, W: torch.Tensor) -> torch.Tensor:
        """CPU ``X @ W`` (or ``X.T @ W``) through torch's CSR kernel, in tiles of ``_TORCH_CSR_TILE`` columns.

        Wider products are several times slower per column in torch 2.13 (hate speech, 217 columns:
        ``X @ W`` 18 ms in one call, 6 ms in tiles of 64; ``X.T @ R`` 9 vs 6.5 ms; 2026-11-29); every output
        column is computed exactly as in one call (bit-identical).
        """
        A = self._torch_csr(transpose)
        W = W.contiguous()
        m = W.shape[1]
        with quiet_sparse():
            if m <= _TORCH_CSR_TILE:
                return A @ W
            out = torch.empty(A.shape[0], m, dtype=W.dtype)
            for s in range(0, m, _TORCH_CSR_TILE):
                out[:, s:s + _TORCH_CSR_TILE] = A @ W[:, s:s + _TORCH_CSR_TILE].contiguous()
            return out

    def _feat(self, W: torch.Tensor) -> torch.Tensor:
        """``X @ W`` (no intercept)."""
        if self.S is not None:
            if W.dim() == 2 and W.shape[1] >= _TORCH_CSR_MIN_COLS:
                return self._csr_product(False, W)
            return torch.from_numpy(np.asarray(self.S @ W.numpy()))
        return self.X @ W

    def matvec(self, W: torch.Tensor) -> torch.Tensor:
        """``X~ @ W`` for W of shape (p+1,) or (p+1, m)."""
        if W.dim() == 2 and not self.sparse:
            return torch.addmm(W[-1:], self.X, W[:-1])
        return self._feat(W[:-1]) + W[-1]

    def kernel_t(self, V: torch.Tensor) -> torch.Tensor:
        """``(X~ @ V).T`` as a contiguous (m, n) tensor, for V of shape (p+1, m)."""
        if not self.sparse:
            return torch.addmm(V[-1][:, None], V[:-1].T, self.X.T)
        return torch.add(self._feat(V[:-1]).T, V[-1][:, None])

    def _rfeat(self, R: torch.Tensor, squared: bool = False) -> torch.Tensor:
        if self.S is not None:
            if squared:
                if not hasattr(self, "_ST_sq"):
                    self._ST_sq = self.ST.multiply(self.ST).tocsr()
                return torch.from_numpy(np.asarray(self._ST_sq @ R.numpy()))
            if R.dim() == 2 and R.shape[1] >= _TORCH_CSR_MIN_COLS:
                return self._csr_product(True, R)
            return torch.from_numpy(np.asarray(self.ST @ R.numpy()))
        if self.sparse:
            if squared:
                if not hasattr(self, "_XT_sq"):
                    XT = self.XT
                    self._XT_sq = csr(XT.crow_indices(), XT.col_indices(), XT.values() ** 2, XT.shape)
                return self._XT_sq @ R
            return self.XT @ R
        return (self.X**2).T @ R if squared else self.X.T @ R

    def rmatvec(self, R: torch.Tensor) -> torch.Tensor:
        """``X~.T @ R`` for R of shape (n,) or (n, m)."""
        return torch.cat([self._rfeat(R), R.sum(0, keepdim=True)], dim=0)

    def rmatvec_sq(self, D: torch.Tensor) -> torch.Tensor:
        """``(X~ * X~).T @ D`` — the diagonal of ``X~.T diag(d_j) X~`` per column, shape (p+1, m)."""
        return torch.cat([self._rfeat(D, squared=True), D.sum(0, keepdim=True)], dim=0)

    def gram(self, d: torch.Tensor) -> torch.Tensor:
        """Dense ``X~.T diag(d) X~`` of shape (p+1, p+1)."""
        p = self.p
        G = torch.empty(p, p, dtype=DTYPE, device=self.device)
        if self.S is not None:
            dn = d.numpy()
            G[:-1, :-1] = torch.from_numpy((self.ST @ sp.diags(dn) @ self.S).toarray())
            col_sum = torch.from_numpy(np.asarray(self.ST @ dn))
        elif self.sparse:
            crow, col, val = self.X.crow_indices(), self.X.col_indices(), self.X.values()
            rows = torch.repeat_interleave(torch.arange(self.n, device=self.device), crow[1:] - crow[:-1])
            DX = csr(crow, col, val * d[rows], self.X.shape)
            G[:-1, :-1] = (self.XT @ DX).to_dense()
            col_sum = self.XT @ d
        else:
            DX = self.X * d[:, None]
            G[:-1, :-1] = self.X.T @ DX
            col_sum = DX.sum(0)
        G[:-1, -1] = col_sum
        G[-1, :-1] = col_sum
        G[-1, -1] = d.sum()
        return G

    def rows(self, idx: torch.Tensor) -> "Design":
        """Design restricted to the given row indices."""
        if self.S is not None:
            return Design.from_scipy(self.S[idx.cpu().numpy()], self.device)
        if self.sparse:
            with quiet_sparse():
                sub = self.X.to_sparse_coo().index_select(0, idx).coalesce().to_sparse_csr()
            return Design.from_tensor(sub)
        return Design(self.X.index_select(0, idx))

    def dense_rows(self, idx: torch.Tensor | None = None) -> torch.Tensor:
        """Dense ``X~`` rows (with the 1 column) for a few rows, shape (k, p+1)."""
        if self.S is not None:
            sub = self.S if idx is None else self.S[idx.cpu().numpy()]
            Xd = torch.from_numpy(sub.toarray())
        else:
            X = self.X if idx is None else (self.rows(idx).X)
            Xd = X.to_dense() if X.layout != torch.strided else X
        return torch.cat([Xd, torch.ones(Xd.shape[0], 1, dtype=DTYPE, device=Xd.device)], dim=1)

    def row_sq_norms_weighted(self) -> torch.Tensor:
        """Squared norms of the rows of ``X~``, shape (n,)."""
        if self.S is not None:
            return torch.from_numpy(np.asarray(self.S.multiply(self.S).sum(1)).ravel()) + 1.0
        if self.sparse:
            sq = csr(self.X.crow_indices(), self.X.col_indices(), self.X.values() ** 2, self.X.shape)
            return (sq @ torch.ones(self.X.shape[1], 1, dtype=DTYPE, device=self.device)).squeeze(1) + 1.0
        return (self.X**2).sum(1) + 1.0


def device_free_bytes(device: torch.device) -> int | None:
    """Free memory of ``device`` in bytes (``cudaMemGetInfo`` on a GPU, ``MemAvailable`` on Linux), or None."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def default_memory_budget(device: torch.device, cap: int | None = None, fraction: float = 0.25) -> int:
    """``memory_budget="auto"``: a quarter of the device's free memory, at most ``cap`` (1 GiB; 4 GiB on CUDA).

    Rounded down to a power of two MiB (at least 16 MiB), so that small changes of the free
    memory leave the score blocks (and so every result, bit for bit) unchanged; the cap keeps
    the blocks of a roomy host those of the documented 1 GB default.  On CUDA the cap is
    4 GiB: the device selection path has no per-block synchronization, so fewer, larger
    blocks mean fewer launches (not yet measured on a GPU).
    """
    if cap is None:
        cap = (4 << 30) if device.type == "cuda" else (1 << 30)
    free = device_free_bytes(device)
    b = cap if free is None else min(cap, int(free * fraction))
    mib = max(16, b >> 20)
    return (1 << (mib.bit_length() - 1)) << 20
