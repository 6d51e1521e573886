"""A trained linkage model, and scoring with it without a database.

The model is Splink's settings JSON with trained m and u per comparison level, wrapped with
what our linking adds (the threshold, the placeholder guard). :meth:`LinkageModel.score`
computes each pair's match weight from the comparison levels directly, in Python: the
levels' tests (``comparisons.py``) pick a level per comparison, its weight is
``log2(m / u)``, and the probability follows from the prior as in Splink. It costs
microseconds per pair and no SQL set-up, which is what online resolution needs; a test
checks that it equals Splink's own scores.

    model = LinkageModel.load_default()          # or registry.load_champion(tracking_uri)
    record = model.features(row)                 # once per record; its blocking keys too
    scores = model.score(record, candidates)     # candidates: features of stored records
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from omnicdp.services.identity.linkage.comparisons import COMPARISONS, Comparison
from omnicdp.services.identity.linkage.features import BLOCKING_KEYS, record_features

FORMAT = "omnicdp-identity-linkage/1"
DEFAULT_MODEL = "default_model.json"
DEFAULT_THRESHOLD = 0.9
#: An e-mail or phone held by records with this many different first names is a
#: placeholder in batch linking (a store's phone, a cashier's stand-in e-mail).
DEFAULT_PLACEHOLDER_NAMES = 6


class ModelError(ValueError):
    """A model file that is not a linkage model of this version."""


@dataclass(frozen=True)
class ComparisonWeight:
    comparison: str
    level: str
    match_weight: float


@dataclass(frozen=True)
class Score:
    """One candidate's score: the probability, the total match weight (log2 odds) and the
    waterfall of per-comparison weights that add up to it with the prior."""

    match_probability: float
    match_weight: float
    weights: tuple[ComparisonWeight, ...]


class LinkageModel:
    """Trained comparison levels and the prior; see the module docs."""

    def __init__(self, document: Mapping[str, Any], version: str | None = None) -> None:
        if document.get("format") != FORMAT:
            raise ModelError(f"not an identity linkage model: format {document.get('format')!r}"
                             f", expected {FORMAT!r}")
        self.document = copy.deepcopy(dict(document))
        self.version = version
        self.threshold = float(document.get("threshold", DEFAULT_THRESHOLD))
        self.placeholder_names = int(document.get("placeholder_names",
                                                  DEFAULT_PLACEHOLDER_NAMES))
        settings = self.splink_settings
        prior = float(settings["probability_two_random_records_match"])
        self.prior_weight = math.log2(prior / (1 - prior))
        by_name = {c.name: c for c in COMPARISONS}
        self.comparisons: list[Comparison] = []
        self._weights: list[list[float]] = []
        for trained in settings["comparisons"]:
            name = trained["output_column_name"]
            comparison = by_name.get(name)
            levels = trained["comparison_levels"]
            if comparison is None or [level["sql_condition"] for level in levels] != [
                    level.sql for level in comparison.levels]:
                # The Python tests score only what the SQL they mirror says.
                raise ModelError(f"comparison {name!r} does not match this version's "
                                 "comparisons; retrain the model")
            self.comparisons.append(comparison)
            self._weights.append([_level_weight(level) for level in levels])

    @property
    def splink_settings(self) -> dict[str, Any]:
        """Splink's settings JSON of the trained model (``Linker(table, settings)``)."""
        return self.document["splink"]

    @classmethod
    def from_json(cls, text: str, version: str | None = None) -> LinkageModel:
        try:
            document = json.loads(text)
        except json.JSONDecodeError as error:
            raise ModelError(f"not JSON: {error}") from error
        return cls(document, version)

    @classmethod
    def load(cls, path: Path, version: str | None = None) -> LinkageModel:
        return cls.from_json(Path(path).read_text(encoding="utf-8"), version)

    @classmethod
    def load_default(cls) -> LinkageModel:
        """The model that ships with the package, trained on the generated retailer."""
        text = resources.files(__package__).joinpath(DEFAULT_MODEL).read_text(encoding="utf-8")
        return cls.from_json(text, version="default")

    def to_json(self) -> str:
        return json.dumps(self.document, ensure_ascii=False, indent=1, sort_keys=True)

    def save(self, path: Path) -> None:
        Path(path).write_text(self.to_json() + "\n", encoding="utf-8")

    @staticmethod
    def features(record: Mapping[str, Any]) -> dict[str, str | None]:
        """A record's features and blocking keys (:data:`BLOCKING_KEYS`), computed once."""
        return record_features(record)

    @staticmethod
    def blocking_keys(features: Mapping[str, Any]) -> dict[str, str]:
        """The keys a store indexes to find candidates: ``{key name: value}``, set ones."""
        return {k: features[k] for k in BLOCKING_KEYS if features.get(k) is not None}

    def score(self, record: Mapping[str, Any],
              candidates: Sequence[Mapping[str, Any]]) -> list[Score]:
        """Each candidate's score against ``record`` (all as :meth:`features`), in order."""
        return [self.score_pair(record, candidate) for candidate in candidates]

    def score_pair(self, left: Mapping[str, Any], right: Mapping[str, Any]) -> Score:
        weights = []
        total = self.prior_weight
        for comparison, level_weights in zip(self.comparisons, self._weights, strict=True):
            index = comparison.level_of(left, right)
            weight = level_weights[index]
            total += weight
            weights.append(ComparisonWeight(comparison.name, comparison.levels[index].label,
                                            weight))
        return Score(probability(total), total, tuple(weights))

    def level_weights(self) -> dict[str, list[tuple[str, float]]]:
        """Every comparison's levels and their match weights (for charts and reviews)."""
        return {c.name: [(level.label, w) for level, w in zip(c.levels, ws, strict=True)]
                for c, ws in zip(self.comparisons, self._weights, strict=True)}


def probability(match_weight: float) -> float:
    """Splink's match probability from a match weight (log2 of the odds)."""
    if match_weight > 1000:
        return 1.0
    odds = 2.0 ** match_weight
    return odds / (1 + odds)


def _level_weight(level: Mapping[str, Any]) -> float:
    if level.get("is_null_level"):
        return 0.0
    m, u = level.get("m_probability"), level.get("u_probability")
    if m is None or u is None:
        raise ModelError(f"level {level.get('label_for_charts')!r} is not trained (no m or u)")
    if u == 0:
        return math.inf
    if m == 0:
        return -math.inf
    return math.log2(m / u)
