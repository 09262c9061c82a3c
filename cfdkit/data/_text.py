"""Text data sets: hate speech (Stormfront) and SST-2."""

from __future__ import annotations

import json
import os

import numpy as np

from ._base import Dataset, as_labels
from ._fetch import fetch_file
from ._home import data_home as _data_home

__all__ = ["load_hate_speech", "load_sst2"]

HATE_FILE = "hate_speech_stormfront/hate_speech_stormfront.jsonl"
SST_FILES = {"train": "sst2_binary/train.jsonl", "dev": "sst2_binary/dev.jsonl", "test": "sst2_binary/test.jsonl"}


def _read_jsonl(path) -> list[dict]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def load_hate_speech(
    data_home: str | os.PathLike | None = None, *, mirror: str | None = None
) -> Dataset:
    """Hate speech from the Stormfront forum (de Gibert et al. 2018), hate vs noHate.

    Keeps the 10,703 rows labelled ``hate`` (1) or ``noHate`` (0), in file
    order, and drops ``relation`` and ``idk/skip``.  The split is the one the
    label-flip papers use (9,632 train / 1,071 test), reproduced exactly, in
    the same row order, by
    ``train_test_split(np.arange(10703), test_size=0.1, random_state=42)``
    (no stratification).

    Parameters
    ----------
    data_home : str or path-like, optional
        See :func:`cfdkit.data.data_home`.
    mirror : str, optional
        Download mirror; see :func:`cfdkit.data.fetch_file`.

    Returns
    -------
    Dataset
        ``X_train`` (list of 9,632 str), ``y_train`` (int64, 1,078 positive),
        ``X_test`` (list of 1,071 str), ``y_test`` (118 positive).
        ``meta`` holds ``file_id_train`` / ``file_id_test`` and
        ``train_index`` / ``test_index`` (positions among the 10,703 rows).

    Notes
    -----
    The texts contain hateful, racist and offensive language.  License:
    CC BY-SA 3.0 Spain (ShareAlike): derived data must keep the license and
    attribution.
    """
    from sklearn.model_selection import train_test_split

    path = fetch_file(HATE_FILE, data_home, mirror=mirror)
    rows = [r for r in _read_jsonl(path) if r["label"] in ("hate", "noHate")]
    texts = [r["text"] for r in rows]
    ids = [r["file_id"] for r in rows]
    y = as_labels([r["label"] == "hate" for r in rows])
    tr, te = train_test_split(np.arange(len(rows)), test_size=0.1, random_state=42)
    return Dataset(
        name="hate-speech",
        X_train=[texts[i] for i in tr],
        y_train=y[tr],
        X_test=[texts[i] for i in te],
        y_test=y[te],
        meta={
            "positive_class": "hate (label 'hate'); 0 = 'noHate'",
            "split": "train_test_split(np.arange(10703), test_size=0.1, random_state=42)",
            "train_index": tr,
            "test_index": te,
            "file_id_train": [ids[i] for i in tr],
            "file_id_test": [ids[i] for i in te],
            "source_files": [HATE_FILE],
            "license": "CC BY-SA 3.0 Spain",
        },
        description=(
            "Stormfront forum sentences (de Gibert et al. 2018; HF hate_speech18), "
            "hate (1) vs noHate (0); the papers' 9,632/1,071 split in the papers' row order."
        ),
        notes="Content warning: hateful and offensive texts. Positive share about 11%.",
    )


def load_sst2(data_home: str | os.PathLike | None = None, *, mirror: str | None = None) -> Dataset:
    """SST-2 binary sentences: 6,920 train / 872 "test" (the SST **dev** split).

    The label-flip papers (ecielyang/Relabeling, ecielyang/Smallest_set)
    train on SST ``train`` and evaluate on SST ``dev``; this loader follows
    them, so ``X_test`` / ``y_test`` are the 872 **dev** sentences.  The
    1,821-sentence SST test split is in ``meta["X_heldout"]`` /
    ``meta["y_heldout"]`` when ``sst2_binary/test.jsonl`` is present in the
    data home (it is not downloaded for this).  Texts are lowercased and without punctuation
    (the preprocessing of successar/instance_attributions_NLP).

    Parameters
    ----------
    data_home : str or path-like, optional
        See :func:`cfdkit.data.data_home`.
    mirror : str, optional
        Download mirror; see :func:`cfdkit.data.fetch_file`.

    Returns
    -------
    Dataset
        ``X_train`` list of 6,920 str, ``y_train`` (3,610 positive);
        ``X_test`` list of 872 str, ``y_test`` (444 positive).  1 = positive
        sentiment.
    """
    train = _read_jsonl(fetch_file(SST_FILES["train"], data_home, mirror=mirror))
    dev = _read_jsonl(fetch_file(SST_FILES["dev"], data_home, mirror=mirror))
    meta = {
        "positive_class": "positive sentiment (1); 0 = negative",
        "split": "train = SST train, test = SST dev (as in the label-flip papers)",
        "source_files": [SST_FILES["train"], SST_FILES["dev"]],
    }
    if _data_home(data_home).joinpath(*SST_FILES["test"].split("/")).exists():
        # optional: only used when already present, never downloaded for this
        held = _read_jsonl(fetch_file(SST_FILES["test"], data_home))
        meta["X_heldout"] = [r["document"] for r in held]
        meta["y_heldout"] = as_labels([r["label"] for r in held])
        meta["source_files"].append(SST_FILES["test"])
    return Dataset(
        name="sst2",
        X_train=[r["document"] for r in train],
        y_train=as_labels([r["label"] for r in train]),
        X_test=[r["document"] for r in dev],
        y_test=as_labels([r["label"] for r in dev]),
        meta=meta,
        description="Stanford Sentiment Treebank, binary sentence level; test = SST dev (872).",
        notes="The 'test' set is SST dev, as in the papers; SST test (1,821) is meta['X_heldout'].",
    )
