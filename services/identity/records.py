"""Identity records: one per distinct observation of a person.

A record is what one source saw together: normalised identifiers and normalised features
(names, date of birth, address). Its id is derived from that content, so seeing the same
observation again (a retried event, a repeated page view) finds the same record instead of
adding one, and events keep the record they came from through every merge and split.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Mapping
from datetime import date
from typing import Any

#: The features a model can score, as the person table and the event traits name them.
FEATURES = ("first_name", "last_name", "date_of_birth", "address_line", "postcode", "city",
            "region", "country")
_SPACES = re.compile(r"\s+")
_MAX_FEATURE_LENGTH = 256


def normalize_features(traits: Mapping[str, Any]) -> dict[str, str]:
    """The record's features: text in NFKC, trimmed, single-spaced and case-folded; the date
    of birth as ``YYYY-MM-DD``; postcode without spaces; country as upper-case ISO code.
    Missing, empty and malformed values are left out."""
    features: dict[str, str] = {}
    for name in FEATURES:
        raw = traits.get(name)
        if not isinstance(raw, str | int) or isinstance(raw, bool):
            continue
        value = _SPACES.sub(" ", unicodedata.normalize("NFKC", str(raw))).strip()
        if not value or len(value) > _MAX_FEATURE_LENGTH:
            continue
        if name == "date_of_birth":
            try:
                value = date.fromisoformat(value[:10]).isoformat()
            except ValueError:
                continue
        elif name == "postcode":
            value = value.replace(" ", "").upper()
        elif name == "country":
            value = value.upper()
        else:
            value = value.casefold()
        features[name] = value
    return features


def record_id(source: str, identifiers: Mapping[str, str], features: Mapping[str, str]) -> str:
    """``rec_`` and 24 hex characters of a hash of the observation's content."""
    content = json.dumps([source, sorted(identifiers.items()), sorted(features.items())],
                         ensure_ascii=False, separators=(",", ":"))
    return "rec_" + hashlib.blake2b(content.encode(), digest_size=12).hexdigest()
