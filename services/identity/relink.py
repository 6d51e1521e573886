"""Relink: the whole history again with the serving model, as merges and splits of stable
customers.

What the rules linked (``exact:`` links) and what reviewers accepted stands; every model
link is decided again. The champion scores every blocked pair of the stored records in
batch (``linkage.engine``), and its links above the threshold are added to the rules'
clusters best first, never one that would put two ``user_id`` values or two loyalty cards
into one customer, join records a reviewer said are two people, or customers an unmerge
kept apart. The store then turns the difference into splits (the part with most records
keeps the id) and merges (the oldest id survives), through the change log.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import pandas as pd

from omnicdp.services.identity.linkage import engine
from omnicdp.services.identity.linkage.cluster import ONE_PER_PERSON, Forest
from omnicdp.services.identity.linkage.model import LinkageModel
from omnicdp.services.identity.linkage.table import PERSON_COLUMNS, features_frame
from omnicdp.services.identity.matching import person_row, weights_json
from omnicdp.services.identity.model import Relinked
from omnicdp.services.identity.store.base import IdentityStore

Progress = Callable[[str], None]


@dataclass(frozen=True)
class HistoryRecord:
    record_id: str
    customer_id: str
    source: str
    features: Mapping[str, str]
    identifiers: Mapping[str, str]


@dataclass(frozen=True)
class History:
    """The identity store's records, active links (a, b, rule), reviewers' decisions and
    the customers kept apart."""

    records: list[HistoryRecord]
    links: list[tuple[str, str, str]]
    reviews: list[tuple[str, str, bool]]
    apart: dict[str, set[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class RelinkPlan:
    clusters: list[list[str]]  # each new customer's records
    new_links: list[tuple[str, str, float, str]]  # (a, b, probability, weights JSON)
    revoked: list[tuple[str, str]]  # model links between records now apart
    model_version: str


def person_table(records: Sequence[HistoryRecord]) -> pd.DataFrame:
    """The stored records as a person table (``linkage.table.PERSON_COLUMNS``)."""
    blank = dict.fromkeys(PERSON_COLUMNS, "")
    rows = [{**blank, "record_id": r.record_id, "source": r.source,
             **{k: v for k, v in person_row(r.features, r.identifiers).items()
                if k in blank}} for r in records]
    return pd.DataFrame(rows, columns=list(PERSON_COLUMNS), dtype=object)


def plan_relink(history: History, model: LinkageModel,
                progress: Progress | None = None) -> RelinkPlan:
    """The customers the model says the history holds (see the module docs)."""
    report = progress or (lambda message: None)
    records = history.records
    ids = [r.record_id for r in records]
    index = {record_id: i for i, record_id in enumerate(ids)}
    forest = Forest([[r.identifiers.get(t) or None for r in records] for t in ONE_PER_PERSON])
    model_links = set()
    for a, b, rule in history.links:
        if a in index and b in index:
            if rule.startswith("model:"):
                model_links.add(frozenset((a, b)))
            else:
                forest.union(index[a], index[b])
    for a, b, accepted in history.reviews:
        if accepted and a in index and b in index:
            forest.union(index[a], index[b])

    # What may never be one customer: reviewers' "two people" and unmerges' separations.
    customer_of = [r.customer_id for r in records]
    members: dict[int, set[str]] = {}
    for i, customer_id in enumerate(customer_of):
        members.setdefault(forest.find(i), set()).add(customer_id)
    rejected = [(index[a], index[b]) for a, b, accepted in history.reviews
                if not accepted and a in index and b in index]

    def allowed(x: int, y: int) -> bool:
        rx, ry = forest.find(x), forest.find(y)
        for a, b in rejected:
            if {forest.find(a), forest.find(b)} == {rx, ry}:
                return False
        return not any(history.apart.get(c, set()) & members.get(ry, set())
                       for c in members.get(rx, set()))

    report(f"scoring the blocked pairs of {len(records)} records with model "
           f"{model.version or 'unversioned'}")
    frame, _ = features_frame(person_table(records), model.placeholder_names)
    with engine.database("duckdb") as db_api:
        pairs = engine.predict(db_api, frame, model, model.threshold)
    ordered = sorted(((index[a], index[b], float(p)) for a, b, p in zip(
        pairs["unique_id_l"], pairs["unique_id_r"], pairs["match_probability"], strict=True)),
        key=lambda pair: (-pair[2], min(pair[0], pair[1]), max(pair[0], pair[1])))
    report(f"clustering: the rules' links, then {len(ordered)} model links best first")
    features = frame.set_index("unique_id").to_dict("index")
    new_links = []
    for x, y, probability in ordered:
        rx, ry = forest.find(x), forest.find(y)
        if rx == ry or not allowed(x, y):
            continue
        if forest.link(x, y, probability):
            joined = members.pop(rx, set()) | members.pop(ry, set())
            members[forest.find(x)] = joined
            if frozenset((ids[x], ids[y])) not in model_links:
                score = model.score_pair(features[ids[x]], features[ids[y]])
                new_links.append((ids[x], ids[y], probability, weights_json(score)))
    clusters: dict[int, list[str]] = {}
    for i, record_id in enumerate(ids):
        clusters.setdefault(forest.find(i), []).append(record_id)
    revoked = [tuple(sorted(pair)) for pair in model_links
               if forest.find(index[min(pair)]) != forest.find(index[max(pair)])]
    return RelinkPlan(list(clusters.values()), new_links, sorted(revoked),
                      model.version or "unversioned")


def relink(store: IdentityStore, model: LinkageModel, actor: str = "cdp identity relink",
           progress: Progress | None = None) -> Relinked:
    """Reprocess the store's whole history with ``model``; what changed."""
    report = progress or (lambda message: None)
    report("reading the identity graph")
    records, links, apart = store.history()
    history = History([HistoryRecord(*row) for row in records], links, store.review_labels(),
                      apart)
    plan = plan_relink(history, model, report)
    report(f"applying: {len(plan.clusters)} customers, {len(plan.new_links)} new model links, "
           f"{len(plan.revoked)} revoked")
    return store.apply_relink(plan.clusters, plan.new_links, plan.revoked, plan.model_version,
                              actor)
