"""Identity linking side by side on a generated retailer: the identity service's
deterministic rules, plain Splink with standard settings, and our model (rules first, then
Splink comparison levels trained on silver labels, clustered best first).

    python -m benchmarks.identity_link --customers 20000 --seed 7 --records 100000 1000000 \
        --online-stored 1000000 [--json]

Quality is pairwise precision, recall and F1 over the person table's records against the
true persons, on ``--customers`` customers: the identity service's rules, plain Splink at
the threshold (of several) where its F1 is best, our model in batch, and our model online
(the identity service's resolver, records in arrival order). Training time is our model's
on that set. Batch link time and F1 (predict and cluster, models already trained) are
measured on retailers grown to about each of ``--records`` records, for our model and
plain Splink; ``--online-stored`` adds the online latency (``identity_online``).
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from benchmarks.output import print_result
from omnicdp.core.identifiers import normalize_identifier
from omnicdp.services.identity.linkage.batch import link_table
from omnicdp.services.identity.linkage.features import phone_key
from omnicdp.services.identity.linkage.metrics import Quality, pairwise_quality
from omnicdp.services.identity.linkage.model import LinkageModel
from omnicdp.services.identity.linkage.table import read_person_table
from omnicdp.services.identity.linkage.train import train_table
from omnicdp.services.identity.matching import Matcher
from omnicdp.services.identity.model import IdentityRecord
from omnicdp.services.identity.resolver import Resolver
from omnicdp.services.identity.store.duckdb import DuckDBIdentityStore
from omnicdp.synth import generate_retailer

RECORDS_PER_CUSTOMER = 1.65  # person-table records per generated customer (20k, seed 7)
PLAIN_THRESHOLD = 0.95
# Plain Splink is scored at each of these and reported at its best.
PLAIN_THRESHOLDS = (0.5, 0.8, 0.9, 0.95, 0.99, 0.999)


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def service_rules(table: pd.DataFrame, model: LinkageModel | None = None) -> dict[str, str]:
    """Each record's customer under the identity service's resolver on an in-memory store
    (its deterministic rules; with ``model``, online resolution with the model after them),
    after every merge and placeholder split: records in file order, 500 a batch, each its
    own observation."""
    seen = datetime(2026, 1, 1, tzinfo=UTC)
    records = [IdentityRecord(
        r["record_id"], {k: r.get(k, "") for k in ("email", "phone", "user_id", "loyalty_id",
                                                   "crm_id") if r.get(k)},
        seen, source=r.get("source", ""),
        traits={k: r[k] for k in ("first_name", "last_name", "date_of_birth", "address_line",
                                  "city", "postcode", "country") if r.get(k)})
        for r in table.to_dict("records")]
    with DuckDBIdentityStore() as store:
        resolver = Resolver(store, matcher=Matcher(model) if model is not None else None)
        resolutions = [res for i in range(0, len(records), 500)
                       for res in resolver.resolve(records[i:i + 500])]
        # Splits give records new customers: read each live customer's records back.
        customers, after = set(), 0
        while changes := store.changes(after, 10_000):
            for change in changes:
                customers.update(c for c in (change.customer_id, change.other_customer_id) if c)
            after = changes[-1].seq
        customer_of = {record.record_id: c for c in customers
                       if store.resolve_redirects(c) == c for record in store.records_of(c)}
    return {res.record_id: customer_of[res.identity_record_id] if res.customer_id
            else f"rejected:{res.record_id}" for res in resolutions}


def _normalised(id_type: str, raw: str, country: str) -> str | None:
    try:
        return normalize_identifier(id_type, raw, "RU", country or None) if raw else None
    except Exception:  # noqa: BLE001 (malformed: missing)
        return None


def plain_input(table: pd.DataFrame) -> pd.DataFrame:
    """The person table as plain Splink gets it: names, address and city lower-cased and
    trimmed, e-mail and phone normalised as the identity service does; no other work."""
    def clean(column: str) -> pd.Series:
        values = table[column].str.strip().str.lower() if column in table else ""
        return values.where(values != "", None)

    country = table["country"] if "country" in table else pd.Series([""] * len(table))
    return pd.DataFrame({
        "unique_id": table["record_id"],
        "first_name": clean("first_name"), "last_name": clean("last_name"),
        "dob": clean("date_of_birth"), "address_line": clean("address_line"),
        "postcode": clean("postcode"), "city": clean("city"),
        "email": [_normalised("email", e, c) for e, c in zip(table["email"], country,
                                                             strict=True)],
        "phone": [phone_key(p, c or None) for p, c in zip(table["phone"], country,
                                                           strict=True)],
    }).astype("string")


class PlainSplink:
    """Splink 5 as its documentation sets it up: library comparisons with term-frequency
    adjustments, u by random sampling, EM on two blocking rules, connected components."""

    def __init__(self, table: pd.DataFrame) -> None:
        import splink.comparison_library as cl
        from splink import DuckDBAPI, Linker, SettingsCreator, block_on

        self.settings = SettingsCreator(
            link_type="dedupe_only",
            comparisons=[
                cl.NameComparison("first_name").configure(term_frequency_adjustments=True),
                cl.NameComparison("last_name").configure(term_frequency_adjustments=True),
                cl.DateOfBirthComparison("dob", input_is_string=True),
                cl.EmailComparison("email"),
                cl.ExactMatch("phone"),
                cl.LevenshteinAtThresholds("address_line", 2),
                cl.ExactMatch("postcode"),
                cl.ExactMatch("city").configure(term_frequency_adjustments=True),
            ],
            blocking_rules_to_generate_predictions=[
                block_on("email"), block_on("phone"), block_on("first_name", "last_name"),
                block_on("dob", "last_name"), block_on("postcode", "first_name")],
        )
        linker = Linker(DuckDBAPI().register(plain_input(table)), self.settings)
        training = linker.training
        training.estimate_probability_two_random_records_match(
            [block_on("email"), block_on("phone")], recall=0.7)
        training.estimate_u_using_random_sampling(max_pairs=1_000_000, seed=42)
        training.estimate_parameters_using_expectation_maximisation(
            block_on("first_name", "last_name"))
        training.estimate_parameters_using_expectation_maximisation(block_on("dob"))
        self.trained = linker.misc.save_model_to_json()

    def link(self, table: pd.DataFrame,
             thresholds: tuple[float, ...] = (PLAIN_THRESHOLD,)) -> dict[float, dict[str, str]]:
        """Each record's cluster at each threshold (connected components)."""
        from splink import DuckDBAPI, Linker

        linker = Linker(DuckDBAPI().register(plain_input(table)), self.trained)
        predictions = linker.inference.predict(threshold_match_probability=min(thresholds))
        out = {}
        for threshold in thresholds:
            clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(
                predictions, threshold).as_pandas_dataframe()
            out[threshold] = dict(zip(clusters["unique_id"], clusters["cluster_id"],
                                      strict=True))
        return out


def _timed(work: Callable[[], object]) -> tuple[object, float]:
    started = time.perf_counter()
    result = work()
    return result, time.perf_counter() - started


def _row(result: dict, name: str, quality: Quality) -> None:
    for key in ("precision", "recall", "f1"):
        result[f"{name} {key}"] = round(getattr(quality, key), 4)


def run(customers: int, seed: int, records: list[int], work_dir: Path, rules: bool = True,
        online_stored: int = 0) -> dict:
    result: dict[str, object] = {"customers": customers, "seed": seed}
    _log(f"generating {customers} customers (seed {seed})")
    summary = generate_retailer(customers, seed, work_dir / "quality")
    table = read_person_table(summary.persons_path)
    truth_table = read_person_table(summary.files["persons_truth"])
    truth = dict(zip(truth_table["record_id"], truth_table["person_id"], strict=True))
    result["records"] = len(table)

    if rules:
        _log("the identity service's rules")
        assigned, seconds = _timed(lambda: service_rules(table))
        _row(result, "rules", pairwise_quality(assigned, truth))
        result["rules seconds"] = round(seconds, 1)

    _log("plain Splink: training")
    plain, plain_train = _timed(lambda: PlainSplink(table))
    _log("plain Splink: linking")
    by_threshold = plain.link(table, PLAIN_THRESHOLDS)
    qualities = {t: pairwise_quality(assigned, truth) for t, assigned in by_threshold.items()}
    best = max(qualities, key=lambda t: qualities[t].f1)
    _row(result, "plain splink", qualities[best])
    result["plain splink threshold (best F1 of " + ", ".join(map(str, PLAIN_THRESHOLDS)) \
        + ")"] = best
    result["plain splink train seconds"] = round(plain_train, 1)

    _log("our model: training")
    trained = train_table(table, progress=_log)
    result["model train seconds"] = round(trained.metrics["train_seconds"], 1)
    links = link_table(table, trained.model).links
    _row(result, "model", pairwise_quality(
        dict(zip(links["record_id"], links["customer_id"], strict=True)), truth))
    _log("our model online: the identity service's resolver, records in arrival order")
    online, seconds = _timed(lambda: service_rules(table, trained.model))
    _row(result, "model online", pairwise_quality(online, truth))
    result["model online seconds"] = round(seconds, 1)

    for size in records:
        grown = math.ceil(size / RECORDS_PER_CUSTOMER)
        _log(f"generating {grown} customers for the batch timing")
        summary = generate_retailer(grown, seed + 1, work_dir / f"scale-{size}")
        big = read_person_table(summary.persons_path)
        big_truth = read_person_table(summary.files["persons_truth"])
        big_labels = dict(zip(big_truth["record_id"], big_truth["person_id"], strict=True))
        name = f"{len(big)} records"
        _log(f"plain Splink: linking {len(big)} records")
        plain_out, plain_seconds = _timed(lambda big=big: plain.link(big, (best,)))
        _log(f"our model: linking {len(big)} records")
        model_out, model_seconds = _timed(
            lambda big=big: link_table(big, trained.model, progress=_log))
        links = model_out.links
        result[f"{name}: plain splink link seconds"] = round(plain_seconds, 1)
        result[f"{name}: model link seconds"] = round(model_seconds, 1)
        result[f"{name}: link time ratio (model / plain)"] = round(
            model_seconds / plain_seconds, 2)
        result[f"{name}: plain splink F1"] = round(pairwise_quality(
            plain_out[best], big_labels).f1, 4)
        result[f"{name}: model F1"] = round(pairwise_quality(dict(zip(
            links["record_id"], links["customer_id"], strict=True)), big_labels).f1, 4)
    if online_stored:
        from benchmarks.identity_online import run as run_online

        _log(f"online: one record per call against {online_stored} known records")
        online = run_online(online_stored, 2000, seed, work_dir, "duckdb", "")
        for key in ("p50 ms", "p95 ms", "p99 ms"):
            result[f"online resolve {key} ({online_stored} known records)"] = online[key]
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=20_000, help="true persons for quality")
    parser.add_argument("--seed", type=int, default=7, help="generator seed")
    parser.add_argument("--records", type=int, nargs="*", default=[100_000],
                        help="sizes of the batch link timing, e.g. 100000 1000000 (none: skip)")
    parser.add_argument("--online-stored", type=int, default=0,
                        help="also time online resolution against this many known records "
                             "(benchmarks/identity_online.py)")
    parser.add_argument("--no-rules", action="store_true",
                        help="skip the identity service's rules (minutes at 20k customers)")
    parser.add_argument("--work-dir", type=Path, default=None,
                        help="keep files here instead of a temp dir")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    if args.work_dir is not None:
        args.work_dir.mkdir(parents=True, exist_ok=True)
        result = run(args.customers, args.seed, args.records, args.work_dir, not args.no_rules,
                     args.online_stored)
    else:
        with tempfile.TemporaryDirectory(prefix="identity-link-bench-") as work_dir:
            result = run(args.customers, args.seed, args.records, Path(work_dir),
                         not args.no_rules, args.online_stored)
    print_result(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
