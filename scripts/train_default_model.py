"""Train the identity linkage model that ships in the package (package data,
services/identity/linkage/default_model.json): a generated retailer of 20,000 customers
with its own seed (not the one benchmarks and tests score on).

    .venv/bin/python scripts/train_default_model.py
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from omnicdp.services.identity.linkage import model as linkage_model
from omnicdp.services.identity.linkage.table import read_person_table
from omnicdp.services.identity.linkage.train import train_table
from omnicdp.synth import generate_retailer

CUSTOMERS = 20_000
SEED = 2026


def main() -> int:
    target = Path(linkage_model.__file__).with_name(linkage_model.DEFAULT_MODEL)
    with tempfile.TemporaryDirectory(prefix="cdp-default-model-") as work:
        summary = generate_retailer(CUSTOMERS, SEED, Path(work))
        table = read_person_table(summary.persons_path)
        truth = read_person_table(summary.files["persons_truth"])
        labels = dict(zip(truth["record_id"], truth["person_id"], strict=True))
        result = train_table(table, labels=labels,
                             progress=lambda m: print(m, file=sys.stderr, flush=True))
    result.model.document["trained_on"] = (f"generated retailer, {CUSTOMERS} customers, "
                                           f"seed {SEED}")
    result.model.save(target)
    print(f"wrote {target}: " + ", ".join(f"{k} {v:.4f}" for k, v in result.metrics.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
