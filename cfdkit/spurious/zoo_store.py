"""A restart-safe store of zoo members, trained in fixed chunks (for learning curves over zoo size).

A :class:`ZooStore` is a folder holding ``chunk-00000.pt``, ``chunk-00001.pt``, ... and ``store.json``.
Chunk ``k`` always holds the same members: ``chunk_size`` models whose bias levels cycle through the four
σ² levels (``chunk_size / 4`` per level) and whose seeds are ``seed_base + k * chunk_size + (0, 1, ...)``.
It is trained as one batch of exactly those members, so a chunk is bit-for-bit the same whenever (and
however often) it is trained on the same machine and torch build: training the zoo in a different batch
composition changes float rounding, so the store never trains a partial or merged chunk.

Every chunk is written atomically (a temp file in the same folder, then ``os.replace``): a run killed
mid-chunk leaves the finished chunks and no partial file, and :meth:`ZooStore.ensure` resumes with the first
missing chunk.  Temp files of killed runs (``.zoo-*.tmp``) are swept on the next ``ensure``.
``store.json`` records the architecture, the training settings and the seed base; opening a folder with
different ones is refused (a store never mixes two recipes).
"""
from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ..core.validation import check_number
from .data import SIGMA2_LEVELS
from .zoo import CNNSpec, ModelZoo, TrainSettings, train_zoo

__all__ = ["ZooStore", "default_store_root"]

STORE_FORMAT = "cfdkit.spurious.ZooStore"


def default_store_root() -> Path:
    """``<data home>/zoo_store`` (``CFDKIT_DATA_HOME`` or the user cache folder)."""
    from ..data import data_home

    return Path(data_home()) / "zoo_store"


def _atomic_write_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".store-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


class ZooStore:
    """Chunks of zoo members on disk; train what is missing, load what is there.

    Parameters
    ----------
    root : path
        The store's folder (created if missing), e.g. ``default_store_root() / "ifbid-train"``.
    spec : CNNSpec
    settings : TrainSettings
    seed_base : int >= 0
        Member seeds are ``seed_base + index``; two stores that must not share models need bases
        further apart than their sizes.
    chunk_size : int, multiple of 4
        Members per chunk (``chunk_size / 4`` per σ² level).
    device : None, 'cpu' or 'cuda'

    Examples
    --------
    >>> store = ZooStore(default_store_root() / "ifbid-train", CNNSpec(), TrainSettings(n_train=400))
    >>> store.ensure(1024)          # trains the missing chunks (resumes after a kill)
    >>> zoo = store.load(1024)      # the first 1,024 members, as one ModelZoo
    """

    def __init__(self, root, spec: CNNSpec = CNNSpec(), settings: TrainSettings = TrainSettings(),
                 seed_base: int = 0, chunk_size: int = 64, device=None):
        if not isinstance(spec, CNNSpec):
            raise TypeError(f"spec must be a CNNSpec; got {type(spec).__name__}.")
        if not isinstance(settings, TrainSettings):
            raise TypeError(f"settings must be a TrainSettings; got {type(settings).__name__}.")
        self.seed_base = check_number(seed_base, "seed_base", low=0, high=2 ** 62, integer=True,
                                      fix="Pass e.g. seed_base=0.")
        self.chunk_size = check_number(chunk_size, "chunk_size", low=4, high=65536, integer=True,
                                       fix="Pass a multiple of 4, e.g. chunk_size=64.")
        if self.chunk_size % 4:
            raise ValueError(f"chunk_size={chunk_size} must be a multiple of 4 (equal members per σ² level).")
        self.root = Path(root)
        self.spec, self.settings, self.device = spec, settings, device
        self.root.mkdir(parents=True, exist_ok=True)
        meta = {"format": STORE_FORMAT, "version": 1, "spec": spec.to_dict(), "settings": asdict(settings),
                "seed_base": self.seed_base, "chunk_size": self.chunk_size, "levels": list(SIGMA2_LEVELS)}
        mf = self.root / "store.json"
        if mf.exists():
            try:
                old = json.loads(mf.read_text())
            except (OSError, ValueError) as e:
                raise ValueError(f"{mf} is not a readable zoo-store manifest ({e}); remove the folder {self.root} "
                                 "or choose another root.") from e
            keys = ("format", "spec", "settings", "seed_base", "chunk_size")
            diff = [k for k in keys if old.get(k) != meta[k]]
            if diff:
                raise ValueError(f"the store at {self.root} was made with other {diff} "
                                 f"({ {k: old.get(k) for k in diff} }); open it with the same recipe or use "
                                 "another root.")
        else:
            _atomic_write_text(mf, json.dumps(meta, indent=1))

    # ------------------------------------------------------------------ layout
    def chunk_path(self, k: int) -> Path:
        return self.root / f"chunk-{k:05d}.pt"

    def chunk_members(self, k: int):
        """``(sigma2s, seeds)`` of chunk ``k`` (fixed by the store's recipe)."""
        k = check_number(k, "k", low=0, integer=True, fix="Chunks are numbered 0, 1, ...")
        s2 = np.tile(np.asarray(SIGMA2_LEVELS, dtype=np.float64), self.chunk_size // 4)
        seeds = self.seed_base + k * self.chunk_size + np.arange(self.chunk_size, dtype=np.int64)
        return s2, seeds

    def n_chunks_for(self, n_models: int) -> int:
        n = check_number(n_models, "n_models", low=1, integer=True, fix="Pass e.g. n_models=1024.")
        return -(-n // self.chunk_size)

    def done(self) -> list[int]:
        """Indices of the chunks on disk."""
        out = []
        for p in self.root.glob("chunk-*.pt"):
            try:
                out.append(int(p.stem.split("-")[1]))
            except (IndexError, ValueError):
                continue
        return sorted(out)

    @property
    def n_models(self) -> int:
        """Members available as a prefix (chunks 0..k-1 all present)."""
        have = set(self.done())
        k = 0
        while k in have:
            k += 1
        return k * self.chunk_size

    # ------------------------------------------------------------------ training
    def _sweep(self):
        for p in self.root.glob(".zoo-*.tmp"):
            try:
                p.unlink()
            except OSError:
                pass

    def train_chunk(self, k: int, progress: bool = False) -> ModelZoo:
        """Train chunk ``k`` (whether or not it is on disk) and return it, without writing it."""
        s2, seeds = self.chunk_members(k)
        return train_zoo(s2, seeds=seeds, spec=self.spec, settings=self.settings, device=self.device,
                         progress=progress)

    def ensure(self, n_models: int, progress: bool = True, time_budget_s: float | None = None) -> int:
        """Train the missing chunks among the first ``ceil(n_models / chunk_size)``; returns the models present.

        Parameters
        ----------
        n_models : int
        progress : bool
            A ``tqdm.auto`` bar over chunks.
        time_budget_s : float or None
            Start no new chunk after this many seconds (the store resumes on the next call).
        """
        from tqdm.auto import tqdm

        n_ch = self.n_chunks_for(n_models)
        check_number(time_budget_s, "time_budget_s", low=0, allow_none=True, fix="Pass seconds or None.")
        self._sweep()
        todo = [k for k in range(n_ch) if not self.chunk_path(k).exists()]
        t0 = time.perf_counter()
        bar = tqdm(total=n_ch, initial=n_ch - len(todo), disable=not progress, desc="zoo chunks", unit="chunk")
        for k in todo:
            if time_budget_s is not None and time.perf_counter() - t0 > time_budget_s:
                break
            zoo = self.train_chunk(k)
            zoo.save(self.chunk_path(k))  # temp file + os.replace: all or nothing
            bar.update(1)
        bar.close()
        return self.n_models

    # ------------------------------------------------------------------ loading
    def load(self, n_models: int | None = None, device=None) -> ModelZoo:
        """The first ``n_models`` members (default all present) as one :class:`ModelZoo`.

        Raises
        ------
        ValueError
            Fewer members are on disk than asked for (call :meth:`ensure` first).
        """
        have = self.n_models
        n = have if n_models is None else check_number(n_models, "n_models", low=1, integer=True,
                                                       fix="Pass e.g. n_models=1024.")
        if have == 0 or n > have:
            raise ValueError(f"the store at {self.root} holds {have} members (a prefix of whole chunks); "
                             f"n_models={n} needs ensure({n}) first.")
        parts = [ModelZoo.load(self.chunk_path(k), device=device) for k in range(self.n_chunks_for(n))]
        zoo = ModelZoo.concat(parts)
        return zoo if len(zoo) == n else zoo.subset(np.arange(n))
