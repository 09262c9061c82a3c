"""Pure converters that rebuild derived data files from upstream bytes.

Each converter takes the raw bytes downloaded from the upstream URL(s) in
the registry and returns the exact bytes of the data-home file; the caller
checks the result against the registry's sha256.  No network access here.
"""

from __future__ import annotations

import csv
import io
import json
import tarfile
import zipfile
from collections.abc import Callable

import numpy as np

__all__ = ["CONVERTERS", "hate_speech_jsonl", "salary_csv", "german_csv", "cr_to_lf"]

GERMAN_COLUMNS = [
    "status", "month", "credit_history", "purpose", "credit_amount", "savings",
    "employment", "investment_as_income_percentage", "personal_status",
    "other_debtors", "residence_since", "property", "age", "installment_plans",
    "housing", "number_of_credits", "skill_level", "people_liable_for",
    "telephone", "foreign_worker", "credit",
]


def _strip_top(name: str) -> str:
    """Drop the ``<repo>-<commit>/`` folder GitHub puts at the top of archives."""
    parts = name.split("/", 1)
    return parts[1] if len(parts) == 2 else ""


def hate_speech_jsonl(tarball: bytes) -> bytes:
    """Build ``hate_speech_stormfront.jsonl`` from the Vicomtech repository.

    Parameters
    ----------
    tarball : bytes
        ``.tar.gz`` archive of ``Vicomtech/hate-speech-dataset`` at the
        pinned commit (GitHub's ``/archive/<commit>.tar.gz``).

    Returns
    -------
    bytes
        UTF-8 JSON Lines, one object per row of ``annotations_metadata.csv``
        in that order, with the keys ``file_id, text, label, user_id,
        subforum_id, num_contexts, comment_id, sentence_num,
        in_sampled_train, in_sampled_test, paper_split``.
    """
    meta_csv = None
    texts: dict[str, str] = {}
    sampled = {"sampled_train": set(), "sampled_test": set()}
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:*") as tar:
        for member in tar:
            if not member.isfile():
                continue
            rel = _strip_top(member.name)
            folder, _, base = rel.rpartition("/")
            if rel == "annotations_metadata.csv":
                meta_csv = tar.extractfile(member).read().decode("utf-8-sig")
            elif folder == "all_files" and base.endswith(".txt"):
                texts[base[:-4]] = tar.extractfile(member).read().decode("utf-8")
            elif folder in sampled and base.endswith(".txt"):
                sampled[folder].add(base[:-4])
    if meta_csv is None:
        raise ValueError("annotations_metadata.csv not found in the hate speech archive")

    rows = []
    for rec in csv.DictReader(io.StringIO(meta_csv)):
        fid = rec["file_id"]
        if fid not in texts:
            raise ValueError(f"all_files/{fid}.txt missing from the hate speech archive")
        comment_id, _, sentence = fid.partition("_")
        rows.append(
            {
                "file_id": fid,
                "text": texts[fid],
                "label": rec["label"],
                "user_id": int(rec["user_id"]),
                "subforum_id": int(rec["subforum_id"]),
                "num_contexts": int(rec["num_contexts"]),
                "comment_id": comment_id,
                "sentence_num": int(sentence),
                "in_sampled_train": fid in sampled["sampled_train"],
                "in_sampled_test": fid in sampled["sampled_test"],
                "paper_split": None,
            }
        )
    from sklearn.model_selection import train_test_split

    binary = [i for i, r in enumerate(rows) if r["label"] in ("hate", "noHate")]
    tr, te = train_test_split(np.arange(len(binary)), test_size=0.1, random_state=42)
    for j in tr:
        rows[binary[j]]["paper_split"] = "train"
    for j in te:
        rows[binary[j]]["paper_split"] = "test"
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")


def salary_csv(raw: bytes) -> bytes:
    """Build ``salary.csv`` from FairKNN's ``salary_numeric_codes.raw``.

    The raw file is whitespace-separated in the order ``sx rk yr dg yd sl``;
    the output uses Weisberg's names in the order
    ``Degree,Rank,Sex,Year,YSdeg,Salary`` with a header line.
    """
    out = ["Degree,Rank,Sex,Year,YSdeg,Salary"]
    for line in raw.decode("ascii").splitlines():
        if not line.strip():
            continue
        sx, rk, yr, dg, yd, sl = line.split()
        out.append(",".join([dg, rk, sx, yr, yd, sl]))
    return ("\n".join(out) + "\n").encode("ascii")


def german_csv(raw: bytes) -> bytes:
    """Build ``german.csv`` (comma-separated, AIF360 header) from ``german.data``."""
    out = [",".join(GERMAN_COLUMNS)]
    out += [",".join(line.split()) for line in raw.decode("ascii").splitlines() if line.strip()]
    return ("\n".join(out) + "\n").encode("ascii")


def cr_to_lf(raw: bytes) -> bytes:
    """Convert CRLF and bare CR line ends to LF."""
    return raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n")


def _from_bank_zip(outer: bytes, name: str) -> bytes:
    with zipfile.ZipFile(io.BytesIO(outer)) as z:
        inner_name = next((n for n in z.namelist() if n.rsplit("/", 1)[-1] == "bank.zip"), None)
        if inner_name is None:
            raise ValueError("bank.zip not found inside bank+marketing.zip")
        with zipfile.ZipFile(io.BytesIO(z.read(inner_name))) as inner:
            member = next((n for n in inner.namelist() if n.rsplit("/", 1)[-1] == name), None)
            if member is None:
                raise ValueError(f"{name} not found inside bank.zip")
            return inner.read(member)


def bank_full_csv(outer: bytes) -> bytes:
    """Extract ``bank-full.csv`` from UCI's ``bank+marketing.zip``."""
    return _from_bank_zip(outer, "bank-full.csv")


def bank_names_txt(outer: bytes) -> bytes:
    """Extract ``bank-names.txt`` from UCI's ``bank+marketing.zip``."""
    return _from_bank_zip(outer, "bank-names.txt")


#: Converter name (as used in the registry) -> function ``bytes -> bytes``.
CONVERTERS: dict[str, Callable[[bytes], bytes]] = {
    "hate_speech_jsonl": hate_speech_jsonl,
    "salary_csv": salary_csv,
    "german_csv": german_csv,
    "cr_to_lf": cr_to_lf,
    "bank_full_csv": bank_full_csv,
    "bank_names_txt": bank_names_txt,
}
