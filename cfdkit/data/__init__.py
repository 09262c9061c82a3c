"""Data sets for cfdkit: loaders, a verified download cache and synthetic data.

Files live in the *data home* (:func:`data_home`): the ``data_home=``
argument, else ``CFDKIT_DATA_HOME``, else the user cache folder.  Its layout
mirrors the project's ``shared/data`` folder.  A missing file is downloaded
from ``CFDKIT_DATA_MIRROR`` (or ``mirror=``) when set, else from its pinned
public origin, and always checked against the sha256 in :data:`REGISTRY`.

>>> from cfdkit.data import load, list_datasets
>>> ds = load("synthetic", n_train=100, n_test=10)
>>> ds.X_train.shape
(100, 20)
"""

from ._api import list_datasets, load
from ._base import Dataset, flip_labels
from ._checksum import clear_checksum_cache
from ._errors import ChecksumError, DownloadError
from ._fetch import fetch_file, verify_file
from ._home import data_home
from ._registry import REGISTRY, RemoteFile, Upstream
from ._synthetic import make_synthetic
from ._tabular import FAIRNESS_NAMES, LOAN_TEST_SIZE, load_fairness, load_loan
from ._text import load_hate_speech, load_sst2

__all__ = [
    "Dataset",
    "ChecksumError",
    "DownloadError",
    "FAIRNESS_NAMES",
    "LOAN_TEST_SIZE",
    "REGISTRY",
    "RemoteFile",
    "Upstream",
    "clear_checksum_cache",
    "data_home",
    "fetch_file",
    "flip_labels",
    "list_datasets",
    "load",
    "load_fairness",
    "load_hate_speech",
    "load_loan",
    "load_sst2",
    "make_synthetic",
    "verify_file",
]

# features and the one preparation path (data -> features -> arrays) for every model family
from .features import bag_of_words, sentence_embeddings, tabular_features  # noqa: E402
from .prepare import FEATURES, L2, THRESHOLD, Prepared, load_arrays, prepare  # noqa: E402

__all__ += ["bag_of_words", "sentence_embeddings", "tabular_features", "FEATURES", "L2", "THRESHOLD", "Prepared",
            "load_arrays", "prepare"]
