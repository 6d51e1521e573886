"""The linkage model online: candidates for a new record from the identity store's index of
blocking keys, scored with the serving model's comparison levels (``linkage/model.py``, equal
to Splink's scores), without SQL per call.

A record is indexed under two kinds of hashed key:

- the model's **blocking keys** (name and city, birth date and surname, phone, mailbox, ...),
  so that records a model would compare in batch meet online too;
- its **family-shared identifiers** (e-mail, loyalty card): the deterministic rules link on
  these only when the records' first names and birth dates allow one person
  (:func:`linkage.cluster.same_person_possible`), and the records holding a value are found
  through the same index.

The serving model is swapped whole by :meth:`Matcher.use` (``ReloadModel``); a resolution
reads it once, so a call in flight finishes with the model it started with.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from omnicdp.services.identity.linkage.cluster import same_person_possible
from omnicdp.services.identity.linkage.model import LinkageModel, Score
from omnicdp.services.identity.store.graph import StoredCandidate, key_hash

#: Identifier types a family shares (a family mailbox, a spouse's card, the home phone; a
#: cashier types the store's phone): they link two records by rule only when their first
#: names and birth dates allow one person.
FAMILY_SHARED = ("email", "loyalty_id", "phone")
#: The person table's identifier columns a model reads.
MODEL_IDENTIFIERS = ("email", "phone", "loyalty_id", "crm_id", "user_id")
#: Records scored per blocking key at most (the rest of a huge block adds little).
PER_KEY = 100
#: Features of stored records kept between calls (records never change: their ids hash
#: their content).
FEATURE_CACHE = 200_000
#: The default uncertainty band for review.
REVIEW_BAND = (0.5, 0.99)


def person_row(features: Mapping[str, str], identifiers: Mapping[str, str]) -> dict[str, str]:
    """A stored record as the person table names its columns (``linkage.table``)."""
    row = {k: v for k, v in features.items()}
    row.update({t: identifiers[t] for t in MODEL_IDENTIFIERS if identifiers.get(t)})
    return row


def index_keys(model_features: Mapping[str, Any], identifiers: Mapping[str, str]) -> tuple[int,
                                                                                          ...]:
    """The hashed keys a record is indexed under (see the module docs)."""
    keys = {key_hash(name, value) for name, value in LinkageModel.blocking_keys(
        model_features).items()}
    keys |= {family_key(t, identifiers[t]) for t in FAMILY_SHARED if identifiers.get(t)}
    return tuple(sorted(keys))


def family_key(id_type: str, value: str) -> int:
    # A phone's is its blocking key's (the same E.164 value): one index row, not two.
    return key_hash("bk_phone" if id_type == "phone" else f"holder:{id_type}", value)


@dataclass(frozen=True)
class Prepared:
    """A new record's model features and index keys."""

    features: dict[str, str | None]
    keys: tuple[int, ...]


@dataclass(frozen=True)
class Scored:
    candidate: StoredCandidate
    score: Score


class Matcher:
    """The serving model, its candidate search and scoring (see the module docs)."""

    def __init__(self, model: LinkageModel, review_band: tuple[float, float] = REVIEW_BAND,
                 per_key: int = PER_KEY) -> None:
        self.model = model
        self.review_band = review_band
        self.per_key = per_key
        self._features: OrderedDict[str, dict[str, str | None]] = OrderedDict()
        self._lock = threading.Lock()

    def use(self, model: LinkageModel) -> LinkageModel:
        """Serve ``model`` from the next call on; the model it replaces."""
        previous, self.model = self.model, model
        return previous

    @property
    def version(self) -> str:
        return self.model.version or "unversioned"

    def prepare(self, features: Mapping[str, str], identifiers: Mapping[str, str],
                evidence: Mapping[str, str]) -> Prepared:
        """A new record's model features (from ``evidence``: its identifiers that may count
        as evidence) and index keys (its family-shared ``identifiers`` all count)."""
        model_features = LinkageModel.features(person_row(features, evidence))
        return Prepared(model_features, index_keys(model_features, identifiers))

    def features_of(self, candidate: StoredCandidate) -> dict[str, str | None]:
        """A stored record's model features, computed once per process."""
        with self._lock:
            found = self._features.get(candidate.record_id)
            if found is not None:
                self._features.move_to_end(candidate.record_id)
                return found
        found = LinkageModel.features(person_row(candidate.features, candidate.identifiers))
        with self._lock:
            self._features[candidate.record_id] = found
            if len(self._features) > FEATURE_CACHE:
                self._features.popitem(last=False)
        return found

    def score(self, model: LinkageModel, record: Prepared,
              candidates: Sequence[StoredCandidate]) -> list[Scored]:
        """Each candidate's score against the record, best first."""
        scored = [Scored(c, model.score_pair(record.features, self.features_of(c)))
                  for c in candidates]
        scored.sort(key=lambda s: (-s.score.match_probability, s.candidate.record_id))
        return scored

    def family_compatible(self, record: Prepared, holders: Sequence[StoredCandidate]) -> bool:
        """Whether the record may be one person with at least one record of a customer
        holding its family-shared identifier (any, when none is indexed)."""
        if not holders:
            return True
        return any(same_person_possible(record.features, self.features_of(h)) for h in holders)


def weights_json(score: Score) -> str:
    """A score's per-comparison weights as stored with a model's link."""
    return json.dumps([[w.comparison, w.level, round(w.match_weight, 6)] for w in score.weights],
                      ensure_ascii=False)

