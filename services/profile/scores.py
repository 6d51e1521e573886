"""Named scores per customer (``ltv_clv``, ``p_alive``, ...), written by the models that
compute them (``cdp ltv refit``) and read with the profile.

A score carries the model and version that computed it and when. Per customer and name the
latest computed one is kept, so a retried or repeated write changes nothing and writes from
several refits may arrive in any order. ``SetScores`` takes a page of customers at a time;
an id merged away writes to the survivor and an unknown id is reported in its result, never
failing the others. A merge keeps, per name, the later computed of the two customers'
scores; a split leaves them with the part that keeps the id; erasure deletes them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from datetime import datetime, timedelta

from omnicdp.core import jsonvalues
from omnicdp.core.errors import FieldViolation, InvalidArgument
from omnicdp.services.profile.model import CustomerScores, Score, ScoreWrite
from omnicdp.services.profile.profiles import read_profile
from omnicdp.services.profile.store.base import ProfileStore

MAX_CUSTOMERS = 1000
MAX_SCORES = 32
MAX_TEXT = 128
NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
MAX_CLOCK_SKEW = timedelta(days=1)


def score_problems(score: Score, now: datetime, prefix: str) -> list[FieldViolation]:
    """What is wrong with one score, fields named under ``prefix``."""
    problems = []
    if not isinstance(score.name, str) or not NAME.fullmatch(score.name):
        problems.append(FieldViolation(f"{prefix}name", "lower-case letters, digits and _, "
                                                        "starting with a letter, at most 64"))
    if not isinstance(score.value, int | float) or not math.isfinite(score.value):
        problems.append(FieldViolation(f"{prefix}value", "a finite number"))
    for field, value in (("model", score.model), ("model_version", score.model_version)):
        if not value or len(value) > MAX_TEXT:
            problems.append(FieldViolation(f"{prefix}{field}",
                                           f"required, at most {MAX_TEXT} characters"))
        elif (problem := jsonvalues.text_problem(value)) is not None:
            problems.append(FieldViolation(f"{prefix}{field}", problem))
    if score.computed_at is None:
        problems.append(FieldViolation(f"{prefix}computed_at", "required"))
    elif score.computed_at > now + MAX_CLOCK_SKEW:
        problems.append(FieldViolation(f"{prefix}computed_at", "more than a day in the future"))
    return problems


class ScoreBook:
    """Customers' scores, over the profile store."""

    def __init__(self, store: ProfileStore) -> None:
        self._store = store

    def set(self, entries: Sequence[CustomerScores], now: datetime) -> list[ScoreWrite]:
        """Store a page of customers' scores; one result per entry, in order."""
        if not entries or len(entries) > MAX_CUSTOMERS:
            raise InvalidArgument(f"send 1 to {MAX_CUSTOMERS} customers' scores per call", [
                FieldViolation("customers", f"{len(entries)} sent")])
        problems: list[FieldViolation] = []
        for i, entry in enumerate(entries):
            prefix = f"customers[{i}]."
            if not entry.customer_id or len(entry.customer_id) > MAX_TEXT:
                problems.append(FieldViolation(f"{prefix}customer_id",
                                               f"required, at most {MAX_TEXT} characters"))
            elif (problem := jsonvalues.text_problem(entry.customer_id)) is not None:
                problems.append(FieldViolation(f"{prefix}customer_id", problem))
            if not entry.scores or len(entry.scores) > MAX_SCORES:
                problems.append(FieldViolation(f"{prefix}scores",
                                               f"1 to {MAX_SCORES} scores"))
            names = [s.name for s in entry.scores]
            if len(set(names)) != len(names):
                problems.append(FieldViolation(f"{prefix}scores", "names must be unique"))
            for j, score in enumerate(entry.scores):
                problems += score_problems(score, now, f"{prefix}scores[{j}].")
        if problems:
            raise InvalidArgument("invalid scores", problems)
        return self._store.set_scores(entries)

    def get(self, customer_id: str) -> tuple[str, list[Score]]:
        """The id the customer is known by now and its scores, by name."""
        profile = read_profile(self._store, customer_id)  # its row keeps the scores
        return profile.customer_id, sorted(profile.scores.values(), key=lambda s: s.name)
