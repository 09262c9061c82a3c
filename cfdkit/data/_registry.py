"""Registry of every data file cfdkit knows: path, sha256, size and sources.

Paths are relative to the data home (see :func:`cfdkit.data.data_home`)
and use ``/``.  ``upstream`` says how to rebuild the exact bytes from the
original public source: either a direct download (the file is a verbatim
copy) or a download followed by a small, pure converter from
:mod:`cfdkit.data._convert` (the file is derived).  Every result is
checked against ``sha256`` before it is stored.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Upstream", "RemoteFile", "REGISTRY", "get_file_spec"]

_FAIRKNN = (
    "https://raw.githubusercontent.com/YannanLiCS/FairKNN/"
    "306addce4f952e2d7823847553ca418e771e4ef2/fair_datasets/"
)
_SST = (
    "https://raw.githubusercontent.com/successar/instance_attributions_NLP/"
    "2fc3a3fe5d70e58e3f1f576adc14772d662afa18/Datasets/SST/data/"
)
_VICOMTECH_COMMIT = "b802137e8314c38a8d4faa965f9908d6c8e7a84d"


@dataclass(frozen=True)
class Upstream:
    """How to rebuild a data file from its original public source.

    Attributes
    ----------
    urls : tuple of str
        Alternative URLs of the upstream bytes, tried in order.
    sha256 : str or None
        sha256 of the upstream bytes when they differ from the final file
        (checked before converting); ``None`` when not pinned.
    convert : str or None
        Name of a converter in :mod:`cfdkit.data._convert`
        (``bytes -> bytes``); ``None`` for a verbatim copy.
    """

    urls: tuple[str, ...]
    sha256: str | None = None
    convert: str | None = None


@dataclass(frozen=True)
class RemoteFile:
    """One data file.

    Attributes
    ----------
    path : str
        Path relative to the data home, ``/``-separated.
    sha256 : str
        Expected sha256 of the file's bytes.
    size : int
        Expected size in bytes.
    upstream : Upstream or None
        Original public source, or ``None`` when the file only exists in a
        cfdkit data home / mirror (for example attribution notes written for
        this project).
    note : str
        Where the file comes from, in words.
    """

    path: str
    sha256: str
    size: int
    upstream: Upstream | None = None
    note: str = field(default="")


def _raw(repo: str, commit: str, path: str) -> str:
    return f"https://raw.githubusercontent.com/{repo}/{commit}/{path}"


_FILES = [
    # --- hate speech (de Gibert et al. 2018) ------------------------------
    RemoteFile(
        "hate_speech_stormfront/hate_speech_stormfront.jsonl",
        "279642e330389ad70c201d420bb3a7e301c30d5d1dda8cd622549b875406e416",
        3_580_359,
        Upstream(
            (
                f"https://codeload.github.com/Vicomtech/hate-speech-dataset/tar.gz/{_VICOMTECH_COMMIT}",
                f"https://github.com/Vicomtech/hate-speech-dataset/archive/{_VICOMTECH_COMMIT}.tar.gz",
            ),
            convert="hate_speech_jsonl",
        ),
        "Derived: built from annotations_metadata.csv, all_files/, sampled_train/ "
        f"and sampled_test/ of Vicomtech/hate-speech-dataset @ {_VICOMTECH_COMMIT} "
        "(CC BY-SA 3.0 Spain).",
    ),
    RemoteFile(
        "hate_speech_stormfront/LICENSE",
        "4d4d0674cda88cf00506c04f99ded5d9db7b98d51f71955ffaf39cece6453461",
        284,
        Upstream((_raw("Vicomtech/hate-speech-dataset", _VICOMTECH_COMMIT, "LICENSE"),)),
        "Verbatim LICENSE of Vicomtech/hate-speech-dataset.",
    ),
    # --- SST-2 --------------------------------------------------------------
    *[
        RemoteFile(
            f"sst2_binary/{name}.jsonl",
            sha,
            size,
            Upstream((_SST + f"{name}.jsonl",)),
            "Verbatim from successar/instance_attributions_NLP @ 2fc3a3fe.",
        )
        for name, sha, size in [
            ("train", "783f3ad58bb04e3e7babfd4971f2e82cd4c777ab364d6f8c176e67f468e5886d", 1_025_764),
            ("dev", "e3d8d4a44b05caaee45c59e5903e2ec51d89456ca0f156188fc644b0e0b1d129", 127_968),
            ("test", "eecb8ccade7ab0a6f9a6126592ed75440e369ec6fa92c66ce6632a5df476c8a5", 266_668),
        ]
    ],
    RemoteFile(
        "sst2_binary/ATTRIBUTION.md",
        "41c798fab61509b4e3921309f3bbfb5397463f6ca7f57038cd390f426e16c804",
        1_366,
        None,
        "Attribution note written for the cfdkit data folder; mirror / data home only.",
    ),
    # --- loan (partial 20k) ---------------------------------------------------
    RemoteFile(
        "loan_default_partial_20k/LoanDefaultRisk.csv",
        "4405bd27d3dd542d88014709e5f53e4057589e9b6fc0e8a4698539f0d973ce97",
        782_370,
        Upstream(
            (_raw("randomRedMage/capstone3", "d2531196af40d940369703f4c54ef28e725a4ad9", "LoanDefaultRisk.csv"),)
        ),
        "Verbatim from randomRedMage/capstone3 @ d2531196 (partial subset of the Kaggle data).",
    ),
    RemoteFile(
        "loan_default_partial_20k/ATTRIBUTION.md",
        "84b8fc2eb94cd89607d6f213e70678fd019affcd99f792232b29e36c687648d4",
        894,
        None,
        "Attribution note written for the cfdkit data folder; mirror / data home only.",
    ),
    # --- fairness: salary ------------------------------------------------------
    RemoteFile(
        "fairness/salary/salary_numeric_codes.raw",
        "01633133203d344b920a3dc4785480f1e8d0adf625f9d6b56dd0eae408128c2e",
        2_079,
        Upstream((_FAIRKNN + "salary/salary_numeric_codes.raw",)),
        "Verbatim from YannanLiCS/FairKNN @ 306addce.",
    ),
    RemoteFile(
        "fairness/salary/salary.csv",
        "23713179a12b20eb83a7218043a43bc80ede7843de4cf4ff02ef1df21757fae6",
        919,
        Upstream(
            (_FAIRKNN + "salary/salary_numeric_codes.raw",),
            sha256="01633133203d344b920a3dc4785480f1e8d0adf625f9d6b56dd0eae408128c2e",
            convert="salary_csv",
        ),
        "Derived from salary_numeric_codes.raw (renamed, reordered columns, header).",
    ),
    # --- fairness: student -----------------------------------------------------
    RemoteFile(
        "fairness/student/student-mat.csv",
        "e47f9ee225e1ee6e69b7564e6dac7123e80b8486677fe111f351964cef5dec80",
        56_993,
        Upstream((_FAIRKNN + "student/student-mat.csv",)),
        "Verbatim UCI file from YannanLiCS/FairKNN @ 306addce.",
    ),
    RemoteFile(
        "fairness/student/student-por.csv",
        "a7594a11d7771c0efe1a740824e0e833da9c4cad07c39a9766a874575563fb3f",
        93_220,
        Upstream(
            (
                _raw(
                    "andrewwang2015/Analyzing-Student-Performance",
                    "c4e7e163debfd6f23d9b2c14cb8673b6ab8ab3de",
                    "Datasets/student-por.csv",
                ),
                _raw("king-tomi/student", "d9a21b3d52c0848d242eecfcec0ee45b3948fbc7", "student-por.csv"),
            )
        ),
        "Verbatim UCI file from andrewwang2015/Analyzing-Student-Performance @ c4e7e163.",
    ),
    RemoteFile(
        "fairness/student/student.txt",
        "6b3ba3dbcd58c6f401c27ab7c855efc4ba0c4643260d3b856b841f63be264881",
        3_207,
        Upstream((_FAIRKNN + "student/student.txt",)),
        "UCI attribute description, verbatim from FairKNN.",
    ),
    # --- fairness: german --------------------------------------------------------
    RemoteFile(
        "fairness/german/german.data",
        "b21f3d81db8071257d5ff1deaeba1fd4303b62712e6fcc9715c7a86202cb5871",
        79_793,
        Upstream((_FAIRKNN + "german/german.data",)),
        "Verbatim UCI file from YannanLiCS/FairKNN @ 306addce.",
    ),
    RemoteFile(
        "fairness/german/german.csv",
        "532082711a8ec4df65cf60775eb7d59d3a5e3458c5a88695630beffd96dfff86",
        80_059,
        Upstream(
            (_FAIRKNN + "german/german.data",),
            sha256="b21f3d81db8071257d5ff1deaeba1fd4303b62712e6fcc9715c7a86202cb5871",
            convert="german_csv",
        ),
        "Derived from german.data (comma-separated, AIF360 header).",
    ),
    RemoteFile(
        "fairness/german/german.doc.txt",
        "69b92cb551111bc37098698288849c96f0fd87ce81a2e54451ff39aa1e53fe49",
        4_679,
        Upstream((_FAIRKNN + "german/german_doc.doc",)),
        "UCI german.doc (FairKNN's german_doc.doc, renamed).",
    ),
    RemoteFile(
        "fairness/german/german.data-numeric_fairknn.csv",
        "b93573d244cb1af26b63e97e0a70442db0ba27ebe6df1513982ffe2c2c16aaca",
        54_793,
        Upstream((_FAIRKNN + "german/german.data-numeric.csv",)),
        "FairKNN's preprocessed numeric German file, verbatim.",
    ),
    # --- fairness: compas --------------------------------------------------------
    RemoteFile(
        "fairness/compas/compas-scores-two-years.csv",
        "c451db85908b2f7fef1d83203bedf6b71ecda0d5af468d82ae62178f91d0cc7d",
        2_546_489,
        Upstream(
            (
                _raw(
                    "propublica/compas-analysis",
                    "bafff5da3f2e45eca6c2d5055faad269defd135a",
                    "compas-scores-two-years.csv",
                ),
            )
        ),
        "Verbatim from propublica/compas-analysis @ bafff5da.",
    ),
    RemoteFile(
        "fairness/compas/propublica_data_for_fairml.csv",
        "f94fcf01be68ab00a886ee4c0a42539b4d6159d347d6b6344f89c79219ebc17d",
        155_044,
        Upstream(
            (_FAIRKNN + "COMPAS/propublicaCompassRecividism_data_fairml/propublica_data_for_fairml.csv",)
        ),
        "FairML's preprocessed COMPAS file, verbatim from FairKNN.",
    ),
    # --- fairness: default ---------------------------------------------------------
    RemoteFile(
        "fairness/default/default_of_credit_card_clients.csv",
        "4edce6da569b2c30788a85fd98a9bafb1a983e8ca1a7aac875dd7ff853cbd0bb",
        2_867_208,
        Upstream(
            (
                _raw(
                    "yusufnb/cs-498-hw6",
                    "f8e85fc9e2b88835bfc2cb43205ccf8e1f5d8fae",
                    "default%20of%20credit%20card%20clients.csv",
                ),
            ),
            sha256="0dd31d641b1f0ca0c642a5d1d7c20fce3dd16a116a07a0aba081829e6a021461",
            convert="cr_to_lf",
        ),
        "Derived: CSV export of the UCI .xls (yusufnb/cs-498-hw6 @ f8e85fc9), CR line ends converted to LF.",
    ),
    # --- fairness: bank --------------------------------------------------------------
    *[
        RemoteFile(
            f"fairness/bank/{name}",
            sha,
            size,
            Upstream(
                (
                    _raw(
                        "Eshani-haldorai/bank-marketing-classifier",
                        "eb5cc1ace7babca900ef7484106d073ff70164c7",
                        "bank%2Bmarketing.zip",
                    ),
                    "https://archive.ics.uci.edu/static/public/222/bank+marketing.zip",
                ),
                convert=conv,
            ),
            f"Extracted unchanged from bank.zip inside the UCI bank+marketing.zip.",
        )
        for name, sha, size, conv in [
            ("bank-full.csv", "d1513ec63b385506f7cfce9f2c5caa9fe99e7ba4e8c3fa264b3aaf0f849ed32d", 4_610_348, "bank_full_csv"),
            ("bank-names.txt", "3899a77082573ed676a7dfce3765a5307915c7f11b1fe2f6f55fd3c5467c12f7", 3_864, "bank_names_txt"),
        ]
    ],
    # --- fairness: adult -------------------------------------------------------------
    *[
        RemoteFile(
            f"fairness/adult/{name}",
            sha,
            size,
            Upstream((_FAIRKNN + f"adult/{name}",)),
            "Verbatim UCI file from YannanLiCS/FairKNN @ 306addce.",
        )
        for name, sha, size in [
            ("adult.data", "5b00264637dbfec36bdeaab5676b0b309ff9eb788d63554ca0a249491c86603d", 3_974_305),
            ("adult.test", "a2a9044bc167a35b2361efbabec64e89d69ce82d9790d2980119aac5fd7e9c05", 2_003_153),
            ("adult.names", "c248284c0b5de30c9e1958d6cdd168a34a654758b620e68f46aefa83fc0a576a", 5_229),
        ]
    ],
]

#: Every known data file, keyed by its path relative to the data home.
REGISTRY: dict[str, RemoteFile] = {f.path: f for f in _FILES}


def get_file_spec(path: str) -> RemoteFile:
    """Return the registry entry for ``path`` (relative to the data home).

    Raises
    ------
    KeyError
        If ``path`` is not registered; the message lists the known paths.
    """
    key = str(path).replace("\\", "/").lstrip("/")
    try:
        return REGISTRY[key]
    except KeyError:
        known = "\n  ".join(sorted(REGISTRY))
        raise KeyError(
            f"{path!r} is not a registered cfdkit data file. Known files:\n  {known}"
        ) from None
