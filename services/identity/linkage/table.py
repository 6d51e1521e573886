"""Person tables in and links out (CSV or Parquet, by extension), and the table's features
with the placeholders found in it removed."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd

from omnicdp.core.errors import FieldViolation, InvalidArgument
from omnicdp.services.identity.linkage.cluster import PERSONAL_FEATURES, RULE_TYPES, cluster
from omnicdp.services.identity.linkage.features import (
    INPUT_COLUMNS,
    blocking_keys,
    table_features,
)

#: PRODUCT.md's person table.
PERSON_COLUMNS = ("record_id", "source", "first_name", "last_name", "email", "phone",
                  "date_of_birth", "address_line", "city", "postcode", "region", "country",
                  "loyalty_id", "crm_id", "user_id")
LINK_COLUMNS = ("record_id", "customer_id", "match_probability")
_FORMATS = (".csv", ".parquet")

Progress = Callable[[str], None]


def _check_format(path: Path, what: str) -> str:
    suffix = path.suffix.lower()
    if suffix not in _FORMATS:
        raise InvalidArgument(
            f"{what} {path} must end in .csv or .parquet",
            [FieldViolation(what, f"unknown format {suffix or '(no extension)'!r}; expected "
                                  ".csv or .parquet")])
    return suffix


def read_person_table(path: Path) -> pd.DataFrame:
    """The person table at ``path``, every column as text (missing values empty)."""
    path = Path(path)
    suffix = _check_format(path, "INPUT")
    if not path.is_file():
        raise InvalidArgument(f"INPUT {path} does not exist",
                              [FieldViolation("INPUT", "no such file")])
    try:
        if suffix == ".csv":
            table = pd.read_csv(path, dtype=str, keep_default_na=False)
        else:
            table = pd.read_parquet(path).astype("string").fillna("").astype(object)
    except (ValueError, OSError, pd.errors.ParserError) as error:
        raise InvalidArgument(f"INPUT {path} cannot be read: {error}",
                              [FieldViolation("INPUT", "not a readable table")]) from error
    if "record_id" not in table.columns:
        raise InvalidArgument(
            f"INPUT {path} has no record_id column; a person table has record_id and any of "
            + ", ".join(PERSON_COLUMNS[1:]),
            [FieldViolation("record_id", "missing column")])
    ids = table["record_id"]
    if (ids == "").any() or ids.duplicated().any():
        raise InvalidArgument(f"INPUT {path}: record_id must be set and unique",
                              [FieldViolation("record_id", "empty or repeated values")])
    return table


def write_links(links: pd.DataFrame, path: Path) -> None:
    path = Path(path)
    suffix = _check_format(path, "OUTPUT")
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".csv":
        links.to_csv(path, index=False)
    else:
        links.to_parquet(path, index=False)


def features_frame(table: pd.DataFrame, placeholder_names: int) -> tuple[pd.DataFrame, int]:
    """The model's features of every record (``unique_id`` is the record id), and how many
    e-mails and phones were found to be placeholders: a value held by records with
    ``placeholder_names`` or more different first names is removed, so it neither links by
    rule nor counts as evidence."""
    count = len(table)
    columns = {c: table[c].tolist() for c in INPUT_COLUMNS if c in table.columns}
    features = table_features(columns, count)
    placeholders = 0
    for column in ("email", "phone"):
        names: dict[str, set[str]] = {}
        for value, name in zip(features[column], features["first_canon"], strict=True):
            if value is not None and name is not None:
                names.setdefault(value, set()).add(name)
        shared = {v for v, held_by in names.items() if len(held_by) >= placeholder_names}
        if shared:
            placeholders += len(shared)
            features[column] = [None if v in shared else v for v in features[column]]
    if placeholders:
        # Rows that lost a value get their mailbox and blocking keys again.
        for i in range(count):
            if features["email"][i] is None and features["email_local"][i] is not None or (
                    features["phone"][i] is None and features["bk_phone"][i] is not None):
                row = {column: values[i] for column, values in features.items()}
                row["email_local"] = row["email"].rpartition("@")[0] if row["email"] else None
                features["email_local"][i] = row["email_local"]
                for key, value in blocking_keys(row).items():
                    features[key][i] = value
    frame = pd.DataFrame({"unique_id": table["record_id"].tolist(), **features}, dtype=object)
    return frame, placeholders


def rule_identifiers(frame: pd.DataFrame) -> dict[str, Sequence[str | None]]:
    """What :func:`cluster.cluster` needs of each record."""
    return {t: frame[t].tolist() for t in (*RULE_TYPES, *PERSONAL_FEATURES)}


#: A reviewer's decision: (record, other record, accepted as one person).
Review = tuple[str, str, bool]


def silver_groups(frame: pd.DataFrame, reviews: Sequence[Review] = ()) -> list[int | None]:
    """Groups of records the deterministic rules join (a shared ``user_id``, CRM id, or a
    loyalty card or e-mail whose holders' names and birth dates agree): "silver" labels to
    learn m from. ``None`` for a record alone. Reviewers' decisions come last: an accepted
    pair's groups are one, a rejected pair's second record leaves the first one's group."""
    roots = cluster(rule_identifiers(frame), (), 1.0).root
    if reviews:
        roots = _reviewed(roots, frame["unique_id"].tolist(), reviews)
    sizes: dict[int, int] = {}
    for root in roots:
        sizes[root] = sizes.get(root, 0) + 1
    return [root if sizes[root] > 1 else None for root in roots]


def _reviewed(roots: list[int], record_ids: list[str], reviews: Sequence[Review]) -> list[int]:
    index = {record_id: i for i, record_id in enumerate(record_ids)}
    roots = list(roots)
    for record_a, record_b, accepted in reviews:
        a, b = index.get(record_a), index.get(record_b)
        if a is None or b is None:
            continue
        if accepted and roots[a] != roots[b]:
            old, new = roots[b], roots[a]
            roots = [new if root == old else root for root in roots]
        elif not accepted and roots[a] == roots[b]:
            roots[b] = len(roots) + b  # a group of its own
    return roots
