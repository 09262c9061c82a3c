"""Tabular data sets: the partial loan subset and the seven fairness sets."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ._base import Dataset, as_labels, check_seed, check_test_size
from ._fetch import fetch_file

__all__ = ["load_loan", "load_fairness", "FAIRNESS_NAMES", "LOAN_TEST_SIZE"]

#: Test fraction of the loan experiments (paper Table 5: 21,120 train / 2,800 test).
LOAN_TEST_SIZE = 2800 / 23920

LOAN_FILE = "loan_default_partial_20k/LoanDefaultRisk.csv"

ADULT_COLUMNS = [
    "age", "workclass", "fnlwgt", "education", "education-num", "marital-status",
    "occupation", "relationship", "race", "sex", "capital-gain", "capital-loss",
    "hours-per-week", "native-country", "income",
]


@dataclass
class _Table:
    """One tabular data set before splitting."""

    X: pd.DataFrame
    y: np.ndarray
    categorical: list[str]
    numeric: list[str]
    sensitive: list[str]
    groups: dict[str, np.ndarray]
    positive_class: str
    description: str
    source_files: list[str]
    notes: str = ""
    extra: dict = field(default_factory=dict)


def _split_types(X: pd.DataFrame, categorical: list[str] | None = None) -> tuple[list[str], list[str]]:
    """Categorical = given names, else every non-numeric column; numeric = the rest."""
    if categorical is None:
        categorical = [c for c in X.columns if not pd.api.types.is_numeric_dtype(X[c])]
    numeric = [c for c in X.columns if c not in categorical]
    return list(categorical), numeric


def _to_dataset(name: str, t: _Table, *, test_size: float, seed: int, split_note: str | None = None) -> Dataset:
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(t.y))
    tr, te = train_test_split(idx, test_size=test_size, random_state=seed, stratify=t.y)
    return _assemble(
        name, t, tr, te,
        split_note or f"stratified train_test_split(test_size={test_size:.6g}, random_state={seed})",
    )


def _assemble(name: str, t: _Table, tr: np.ndarray, te: np.ndarray, split: str) -> Dataset:
    X = t.X.reset_index(drop=True)
    meta = {
        "positive_class": t.positive_class,
        "sensitive": t.sensitive,
        "split": split,
        "train_index": tr,
        "test_index": te,
        "source_files": t.source_files,
        **t.extra,
    }
    return Dataset(
        name=name,
        X_train=X.iloc[tr].reset_index(drop=True),
        y_train=t.y[tr],
        X_test=X.iloc[te].reset_index(drop=True),
        y_test=t.y[te],
        feature_names=list(X.columns),
        categorical=t.categorical,
        numeric=t.numeric,
        groups={g: (np.asarray(m, bool)[tr], np.asarray(m, bool)[te]) for g, m in t.groups.items()},
        meta=meta,
        description=t.description,
        notes=t.notes,
    )


# --------------------------------------------------------------------------- loan
def load_loan(
    data_home: str | os.PathLike | None = None,
    *,
    test_size: float = LOAN_TEST_SIZE,
    seed: int = 0,
    drop_duplicates: bool = False,
    mirror: str | None = None,
) -> Dataset:
    """Loan default (PARTIAL 20,000-row subset of Kaggle's "Loan Prediction Based on Customer Behavior").

    **Partial data.** The full Kaggle file has 252,000 rows and 13 columns;
    this subset (``randomRedMage/capstone3``) appears to be the first 10,000
    defaulters followed by the first 10,000 non-defaulters, with ``Id``,
    ``Profession``, ``CITY`` and ``STATE`` removed, so it is balanced 50/50
    (the full data are about 12% positive).  **13,568 of the 20,000 rows
    repeat an earlier row exactly** (only 6,432 distinct rows); duplicates
    couple their labels in influence / label-flip experiments and can sit on
    both sides of the split.  ``drop_duplicates=True`` keeps the first copy
    of each row (a row that occurs with both labels keeps both).

    Parameters
    ----------
    data_home : str or path-like, optional
        See :func:`cfdkit.data.data_home`.
    test_size : float, default 2800/23920
        Test fraction; the default is the paper's proportion (Table 5:
        21,120 train / 2,800 test), giving 17,658 / 2,342 rows here.
    seed : int, default 0
        ``random_state`` of the stratified (hence balanced) split.
    drop_duplicates : bool, default False
        Drop exact repeats (features and label) before splitting.
    mirror : str, optional
        Download mirror; see :func:`cfdkit.data.fetch_file`.

    Returns
    -------
    Dataset
        ``X_*`` DataFrames with ``Income, Age, Experience, Married/Single,
        House_Ownership, Car_Ownership, CURRENT_JOB_YRS, CURRENT_HOUSE_YRS``;
        ``y`` = ``Risk_Flag`` (1 = defaulted).
    """
    test_size = check_test_size(test_size)
    seed = check_seed(seed)
    path = fetch_file(LOAN_FILE, data_home, mirror=mirror)
    df = pd.read_csv(path, encoding="utf-8-sig")
    n_dup = int(df.duplicated().sum())
    if drop_duplicates:
        df = df.drop_duplicates().reset_index(drop=True)
    y = as_labels(df["Risk_Flag"])
    X = df.drop(columns=["Risk_Flag"])
    cat, num = _split_types(X, ["Married/Single", "House_Ownership", "Car_Ownership"])
    notes = (
        "PARTIAL stand-in: 20,000 of 252,000 rows, 9 of 13 columns (no Id, Profession, CITY, "
        f"STATE), balanced 10,000/10,000 by construction. {n_dup:,} of the 20,000 rows repeat an "
        "earlier row exactly"
        + (f"; they were dropped (drop_duplicates=True): {len(df):,} rows remain, no longer "
           f"balanced ({int(y.sum()):,} positive)." if drop_duplicates
           else "; they are kept (pass drop_duplicates=True to drop them).")
    )
    t = _Table(
        X=X, y=y, categorical=cat, numeric=num, sensitive=[], groups={},
        positive_class="Risk_Flag = 1 (defaulted)",
        description="Loan default risk, partial 20k subset of the Kaggle data; balanced split.",
        source_files=[LOAN_FILE], notes=notes, extra={"n_duplicate_rows": n_dup, "partial": True},
    )
    return _to_dataset("loan", t, test_size=test_size, seed=seed)


# ---------------------------------------------------------------------- fairness
def _salary(home, mirror, **_) -> _Table:
    f = "fairness/salary/salary.csv"
    df = pd.read_csv(fetch_file(f, home, mirror=mirror))
    y = as_labels(df["Salary"] > 25000)
    X = df.drop(columns=["Salary"])
    cat, num = _split_types(X, ["Degree", "Rank", "Sex"])
    return _Table(
        X, y, cat, num, ["Sex"], {"female": (X["Sex"] == 1).to_numpy()},
        "Salary > 25,000 (1)", "Weisberg's faculty salaries (52 rows); label Salary > 25,000.",
        [f], notes="Codes: Sex 1 = female; Rank 1/2/3 = assistant/associate/full; Degree 1 = doctorate.",
    )


def _student(home, mirror, subject="por", keep_grades=False, **_) -> _Table:
    if subject not in ("por", "mat"):
        raise ValueError(f"subject must be 'por' (Portuguese, default) or 'mat' (math), got {subject!r}")
    f = f"fairness/student/student-{subject}.csv"
    df = pd.read_csv(fetch_file(f, home, mirror=mirror), sep=";")
    y = as_labels(df["G3"] >= 10)
    drop = ["G3"] if keep_grades else ["G1", "G2", "G3"]
    X = df.drop(columns=drop)
    cat, num = _split_types(X)
    return _Table(
        X, y, cat, num, ["sex"], {"female": (X["sex"] == "F").to_numpy()},
        "G3 >= 10 (pass, 1)",
        f"UCI Student Performance ({'Portuguese' if subject == 'por' else 'math'}, {len(df)} rows); "
        "label G3 >= 10.",
        [f],
        notes=("G1 and G2 (period grades) are kept; they nearly determine G3." if keep_grades
               else "G1 and G2 are dropped (they leak G3), as in FairKNN; keep_grades=True keeps them."),
    )


def _german(home, mirror, **_) -> _Table:
    from ._convert import GERMAN_COLUMNS

    f = "fairness/german/german.data"
    df = pd.read_csv(fetch_file(f, home, mirror=mirror), sep=" ", header=None, names=GERMAN_COLUMNS)
    y = as_labels(df["credit"] == 1)
    X = df.drop(columns=["credit"])
    cat, num = _split_types(X)
    return _Table(
        X, y, cat, num, ["personal_status", "age"],
        {"female": X["personal_status"].isin(["A92", "A95"]).to_numpy(),
         "age_under_25": (X["age"] < 25).to_numpy()},
        "credit = 1, good credit (1; favourable); bad credit = 0",
        "UCI Statlog German credit (1,000 rows); 1 = good credit.", [f],
        notes="FairKNN uses the opposite coding (1 = bad). personal_status A92/A95 = female.",
    )


_COMPAS_FEATURES = [
    "sex", "age", "age_cat", "race", "juv_fel_count", "juv_misd_count",
    "juv_other_count", "priors_count", "c_charge_degree",
]


def _compas(home, mirror, **_) -> _Table:
    f = "fairness/compas/compas-scores-two-years.csv"
    df = pd.read_csv(fetch_file(f, home, mirror=mirror))
    keep = (
        df["days_b_screening_arrest"].between(-30, 30)
        & (df["is_recid"] != -1)
        & (df["c_charge_degree"] != "O")
        & (df["score_text"] != "N/A")
    )
    df = df[keep].reset_index(drop=True)
    y = as_labels(df["two_year_recid"])
    X = df[_COMPAS_FEATURES].copy()
    cat, num = _split_types(X, ["sex", "age_cat", "race", "c_charge_degree"])
    return _Table(
        X, y, cat, num, ["race", "sex"],
        {"african_american": (X["race"] == "African-American").to_numpy(),
         "female": (X["sex"] == "Female").to_numpy()},
        "two_year_recid = 1 (re-offended within two years; the UNfavourable outcome)",
        "ProPublica COMPAS two-year recidivism, standard ProPublica filter (6,172 rows).",
        [f],
        notes=("Filter: -30 <= days_b_screening_arrest <= 30, is_recid != -1, c_charge_degree != 'O', "
               "score_text != 'N/A'. Features exclude the COMPAS scores and every post-outcome column."),
    )


def _default(home, mirror, **_) -> _Table:
    f = "fairness/default/default_of_credit_card_clients.csv"
    df = pd.read_csv(fetch_file(f, home, mirror=mirror))
    label = "default payment next month"
    y = as_labels(df[label])
    X = df.drop(columns=["ID", label])
    cat, num = _split_types(X, ["SEX", "EDUCATION", "MARRIAGE"])
    return _Table(
        X, y, cat, num, ["SEX"], {"female": (X["SEX"] == 2).to_numpy()},
        "default payment next month = 1 (default; the unfavourable outcome)",
        "UCI default of credit card clients, Taiwan 2005 (30,000 rows).", [f],
        notes="CSV export of the UCI .xls (not the .xls). SEX: 1 = male, 2 = female.",
    )


def _bank(home, mirror, **_) -> _Table:
    f = "fairness/bank/bank-full.csv"
    df = pd.read_csv(fetch_file(f, home, mirror=mirror), sep=";")
    y = as_labels(df["y"] == "yes")
    X = df.drop(columns=["y"])
    cat, num = _split_types(X)
    return _Table(
        X, y, cat, num, ["age", "marital"],
        {"age_under_25": (X["age"] < 25).to_numpy(), "age_over_60": (X["age"] > 60).to_numpy()},
        "y = 'yes' (subscribed a term deposit, 1)",
        "UCI bank marketing, bank-full.csv (45,211 rows, 17-column version).", [f],
        notes="'duration' is known only after the call (UCI advises dropping it for realistic models).",
    )


def _read_adult(path, skiprows: int) -> pd.DataFrame:
    return pd.read_csv(
        path, header=None, names=ADULT_COLUMNS, skipinitialspace=True,
        na_values="?", skiprows=skiprows,
    )


def _adult(home, mirror, dropna=True, **_) -> tuple[_Table, np.ndarray, np.ndarray]:
    files = ["fairness/adult/adult.data", "fairness/adult/adult.test"]
    train = _read_adult(fetch_file(files[0], home, mirror=mirror), 0)
    test = _read_adult(fetch_file(files[1], home, mirror=mirror), 1)  # '|1x3 Cross validator'
    if dropna:
        train, test = train.dropna(), test.dropna()
    df = pd.concat([train, test], ignore_index=True)
    income = df["income"].str.rstrip(".")  # the test file writes '>50K.'
    y = as_labels(income == ">50K")
    X = df.drop(columns=["income"])
    cat, num = _split_types(X)
    t = _Table(
        X, y, cat, num, ["sex", "race"],
        {"female": (X["sex"] == "Female").to_numpy(), "non_white": (X["race"] != "White").to_numpy()},
        "income > 50K (1)",
        "UCI Adult census income; the official adult.data / adult.test split.", files,
        notes=("Rows with a missing value ('?') were dropped (30,162 + 15,060)." if dropna
               else "Missing values ('?') are NaN in the categorical columns."),
    )
    n_tr = len(train)
    return t, np.arange(n_tr), np.arange(n_tr, len(df))


_FAIRNESS: dict[str, Callable] = {
    "salary": _salary,
    "student": _student,
    "german": _german,
    "compas": _compas,
    "default": _default,
    "bank": _bank,
    "adult": _adult,
}
#: Names accepted by :func:`load_fairness`.
FAIRNESS_NAMES = tuple(_FAIRNESS)


def load_fairness(
    name: str,
    data_home: str | os.PathLike | None = None,
    *,
    test_size: float = 0.2,
    seed: int = 0,
    subject: str = "por",
    keep_grades: bool = False,
    dropna: bool = True,
    mirror: str | None = None,
) -> Dataset:
    """One of the seven tabular fairness benchmarks, with a binary 0/1 label.

    ========  ==========================================  ==============================  =====================
    name      label = 1                                   sensitive (``meta``)            ``groups`` masks
    ========  ==========================================  ==============================  =====================
    salary    Salary > 25,000 (19 of 52)                  Sex                             female
    student   G3 >= 10, pass (por 549/649, mat 265/395)   sex                             female
    german    good credit, ``credit == 1`` (700/1,000)    personal_status, age            female, age_under_25
    compas    two_year_recid (unfavourable; 2,809/6,172)  race, sex                       african_american, female
    default   default next month (unfavourable; 6,636)    SEX                             female
    bank      y = "yes" (5,289 of 45,211)                 age, marital                    age_under_25, age_over_60
    adult     income > 50K                                sex, race                       female, non_white
    ========  ==========================================  ==============================  =====================

    Every set except ``adult`` is split with a seeded, label-stratified
    ``train_test_split`` (``test_size=0.2`` by default: 80/20 is the usual
    choice for these benchmarks and keeps at least 11 test rows for the
    52-row salary set).  ``adult`` uses its official files
    (``adult.data`` = train, ``adult.test`` = test; ``test_size`` and
    ``seed`` are ignored).  COMPAS is ProPublica's two-year file after their
    standard filter (6,172 rows) with nine demographic / criminal-history
    features (no COMPAS scores, nothing observed after the outcome).

    Parameters
    ----------
    name : str
        One of ``salary, student, german, compas, default, bank, adult``.
    data_home : str or path-like, optional
        See :func:`cfdkit.data.data_home`.
    test_size : float, default 0.2
        Test fraction in (0, 1) (ignored for ``adult``).
    seed : int, default 0
        ``random_state`` of the split (ignored for ``adult``).
    subject : {"por", "mat"}, default "por"
        Student only: Portuguese (649 rows) or math (395 rows).
    keep_grades : bool, default False
        Student only: keep the period grades G1 and G2 as features (they
        nearly determine G3; FairKNN drops them).
    dropna : bool, default True
        Adult only: drop rows with a missing value (``?``), leaving
        30,162 train / 15,060 test rows; with ``False`` they stay as NaN.
    mirror : str, optional
        Download mirror; see :func:`cfdkit.data.fetch_file`.

    Returns
    -------
    Dataset
        Raw feature DataFrames (label column removed), ``categorical`` and
        ``numeric`` column lists, ``groups`` masks, and ``meta`` with
        ``positive_class``, ``sensitive`` and ``source_files``.
    """
    if not isinstance(name, str) or name.lower() not in _FAIRNESS:
        raise ValueError(
            f"unknown fairness data set {name!r}; choose one of {', '.join(FAIRNESS_NAMES)}"
        )
    name = name.lower()
    test_size = check_test_size(test_size)
    seed = check_seed(seed)
    opts = dict(subject=subject, keep_grades=keep_grades, dropna=dropna)
    if name == "adult":
        t, tr, te = _adult(data_home, mirror, **opts)
        return _assemble("adult", t, tr, te, "official split: adult.data (train) / adult.test (test)")
    t = _FAIRNESS[name](data_home, mirror, **opts)
    return _to_dataset(name, t, test_size=test_size, seed=seed)
