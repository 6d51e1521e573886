"""`cdp identity train | link | promote`: batch training and linking of a person table, and
moving the MLflow champion (PRODUCT.md). Imported only when one of them runs."""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from omnicdp.cli import common
from omnicdp.core.errors import DomainError, FieldViolation, InvalidArgument

# The labelled evaluation set `promote` judges candidates on, unless --eval is given: a
# generated retailer, the same for every candidate.
EVAL_CUSTOMERS = 2000
EVAL_SEED = 101


def _progress(command: str) -> Callable[[str], None]:
    return common.progress(f"cdp identity {command}")


def _fail(command: str, error: DomainError) -> int:
    return common.fail(f"cdp identity {command}", error)


def _tracking(args: argparse.Namespace) -> str:
    return common.tracking(args)


def read_labels(path: Path) -> dict[str, str]:
    """A labels table: ``record_id`` and ``person_id`` (CSV or Parquet)."""
    from omnicdp.services.identity.linkage.table import read_person_table

    table = read_person_table(path)
    if "person_id" not in table.columns:
        raise InvalidArgument(f"labels {path} need columns record_id and person_id",
                              [FieldViolation("person_id", "missing column")])
    return dict(zip(table["record_id"], table["person_id"], strict=True))


def _check_threshold(threshold: float | None) -> None:
    if threshold is not None and not 0.0 < threshold <= 1.0:
        raise InvalidArgument(f"--threshold must be a probability in (0, 1], got {threshold}",
                              [FieldViolation("threshold", "out of range")])


def _train_and_log(args: argparse.Namespace, table, report,  # noqa: ANN001
                   reviews=()) -> tuple[object, str]:  # noqa: ANN001
    from omnicdp.services.identity.linkage.model import DEFAULT_THRESHOLD
    from omnicdp.services.identity.linkage.registry import log_training
    from omnicdp.services.identity.linkage.train import train_table

    labels = read_labels(args.labels) if getattr(args, "labels", None) else None
    result = train_table(table, labels=labels, threshold=args.threshold or DEFAULT_THRESHOLD,
                         progress=report, reviews=reviews)
    report("logging the run to MLflow and registering the model")
    version = log_training(result, _tracking(args), source=str(args.input))
    result.model.version = version
    return result, version


def _open_store(args: argparse.Namespace):  # noqa: ANN202 (an IdentityStore)
    from omnicdp.services.identity.store import open_store

    args.data_dir.mkdir(parents=True, exist_ok=True)
    return open_store(args.database_url, args.data_dir, 0)


def train(args: argparse.Namespace) -> int:
    from omnicdp.services.identity.linkage.table import read_person_table

    report = _progress("train")
    try:
        _check_threshold(args.threshold)
        if args.from_store == (args.input is not None):
            raise InvalidArgument("train on INPUT or --from-store, one of them",
                                  [FieldViolation("INPUT", "give a person table or "
                                                           "--from-store")])
        reviews = ()
        if args.from_store:
            from omnicdp.services.identity.relink import person_table

            report("reading the identity store's records and reviewers' decisions")
            with _open_store(args) as store:
                records, _, _ = store.history()
                reviews = tuple(store.review_labels())
            table = person_table([_history_record(row) for row in records])
            args.input = args.database_url or args.data_dir / "identity.duckdb"
        else:
            table = read_person_table(args.input)
        result, version = _train_and_log(args, table, report, reviews)
    except DomainError as error:
        return _fail("train", error)
    summary = {"model": "cdp-identity", "version": version, "records": len(table),
               "labelled": result.labelled, "seconds": round(result.seconds, 1),
               "metrics": {k: round(v, 4) for k, v in result.metrics.items()}}
    if args.json:
        print(json.dumps(summary))
    else:
        from omnicdp.cli.tables import print_table

        print_table(f"cdp-identity version {version} (promote it with `cdp identity promote "
                    f"{version}`)", [(k, v) for k, v in summary["metrics"].items()],
                    headers=("metric", "value"))
    return 0


def link(args: argparse.Namespace) -> int:
    from omnicdp.services.identity.linkage.batch import link_table
    from omnicdp.services.identity.linkage.table import read_person_table, write_links

    report = _progress("link")
    started = time.monotonic()
    try:
        _check_threshold(args.threshold)
        if args.out.suffix.lower() not in (".csv", ".parquet"):
            raise InvalidArgument(f"--out {args.out} must end in .csv or .parquet",
                                  [FieldViolation("out", "unknown format")])
        table = read_person_table(args.input)
        if args.train:
            result, _ = _train_and_log(args, table, report)
            model = result.model
        else:
            model = _model(args)
        report(f"model cdp-identity {model.version}")
        result = link_table(table, model, threshold=args.threshold, backend=args.backend,
                            progress=report)
        write_links(result.links, args.out)
    except DomainError as error:
        return _fail("link", error)
    links = result.links
    summary = {"records": len(links), "customers": int(links["customer_id"].nunique()),
               "linked_by_model": int((links["match_probability"].fillna(1.0) < 1.0).sum()),
               "pairs_above_threshold": result.pairs_scored,
               "placeholders": result.placeholders, "model_version": model.version,
               "threshold": args.threshold or model.threshold, "backend": args.backend,
               "seconds": round(time.monotonic() - started, 1), "out": str(args.out)}
    report(f"wrote {len(links)} rows to {args.out}")
    if args.json:
        print(json.dumps(summary))
    else:
        from omnicdp.cli.tables import print_table

        print_table("identity link", list(summary.items()), headers=("", "value"))
    return 0


def _history_record(row):  # noqa: ANN001, ANN202
    from omnicdp.services.identity.relink import HistoryRecord

    return HistoryRecord(*row)


def _model(args: argparse.Namespace):  # noqa: ANN202 (a LinkageModel)
    from omnicdp.services.identity.linkage.registry import load_serving, load_version

    if args.model == "default":
        from omnicdp.services.identity.linkage.model import LinkageModel

        return LinkageModel.load_default()
    if args.model == "champion":
        return load_serving(_tracking(args))
    return load_version(_tracking(args), args.model)


def relink(args: argparse.Namespace) -> int:
    from omnicdp.services.identity.relink import relink as run_relink

    report = _progress("relink")
    started = time.monotonic()
    try:
        model = _model(args)
        report(f"model cdp-identity {model.version}")
        with _open_store(args) as store:
            result = run_relink(store, model, progress=report)
    except DomainError as error:
        return _fail("relink", error)
    summary = {"model_version": model.version, "merged": result.merged,
               "split": result.split, "links_added": result.links_added,
               "links_revoked": result.links_revoked, "change_seq": result.change_seq,
               "seconds": round(time.monotonic() - started, 1)}
    if args.json:
        print(json.dumps(summary))
    else:
        from omnicdp.cli.tables import print_table

        print_table("identity relink", list(summary.items()), headers=("", "value"))
    return 0


def promote(args: argparse.Namespace) -> int:
    from omnicdp.services.identity.linkage.batch import link_table
    from omnicdp.services.identity.linkage.metrics import pairwise_quality
    from omnicdp.services.identity.linkage.registry import promote as move_champion
    from omnicdp.services.identity.linkage.table import read_person_table

    report = _progress("promote")
    try:
        with tempfile.TemporaryDirectory(prefix="cdp-eval-") as work:
            if args.eval:
                if not args.labels:
                    raise InvalidArgument("--eval needs --labels (record_id, person_id)",
                                          [FieldViolation("labels", "required with --eval")])
                table, labels = read_person_table(args.eval), read_labels(args.labels)
            else:
                from omnicdp.synth import generate_retailer

                report(f"generating the evaluation set ({EVAL_CUSTOMERS} customers, seed "
                       f"{EVAL_SEED})")
                summary = generate_retailer(EVAL_CUSTOMERS, EVAL_SEED, Path(work))
                table = read_person_table(summary.persons_path)
                labels = read_labels(summary.files["persons_truth"])

            def evaluate(model):  # noqa: ANN001, ANN202
                report(f"evaluating version {model.version}")
                links = link_table(table, model).links
                return pairwise_quality(dict(zip(links["record_id"], links["customer_id"],
                                                 strict=True)), labels)

            promotion = move_champion(_tracking(args), args.version, evaluate, force=args.force)
    except DomainError as error:
        return _fail("promote", error)
    result = {"version": promotion.version, "previous": promotion.previous,
              "promoted": promotion.promoted, "reason": promotion.reason,
              "candidate": promotion.candidate.to_dict(),
              "champion": promotion.champion.to_dict() if promotion.champion else None}
    if args.json:
        print(json.dumps(result))
    else:
        from omnicdp.cli.tables import print_table

        rows = [(k, promotion.candidate.to_dict()[k],
                 promotion.champion.to_dict()[k] if promotion.champion else "-")
                for k in ("precision", "recall", "f1")]
        print_table(f"version {promotion.version} is champion ({promotion.reason})", rows,
                    headers=("", f"version {promotion.version}",
                             f"previous {promotion.previous or '-'}"))
    return 0


def add_parser(commands: argparse._SubParsersAction) -> None:
    """`cdp identity ...` (light: nothing heavy is imported to build it)."""
    identity = commands.add_parser("identity", help="train, link and promote identity models")
    actions = identity.add_subparsers(dest="action", required=True, metavar="ACTION")

    def shared(parser: argparse.ArgumentParser) -> None:
        common.add_tracking_arguments(parser)
        parser.add_argument("--json", action="store_true", help="print the result as JSON")

    def store_option(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--database-url", default=os.environ.get("CDP_DATABASE_URL", ""),
                            help="the identity store (default: DuckDB in DATA_DIR; or "
                                 "postgresql://...; env CDP_DATABASE_URL)")

    train_parser = actions.add_parser("train", help="train a model on a person table and "
                                      "register it in MLflow")
    train_parser.add_argument("input", type=Path, metavar="INPUT", nargs="?",
                              help="person table (.csv or .parquet)")
    train_parser.add_argument("--from-store", action="store_true",
                              help="train on the identity store's records instead, with "
                                   "reviewers' decisions correcting the silver labels")
    store_option(train_parser)
    train_parser.add_argument("--labels", type=Path, default=None,
                              help="true labels (record_id, person_id) for precision/recall")
    train_parser.add_argument("--threshold", type=float, default=None,
                              help="match probability that links (default 0.9)")
    shared(train_parser)
    train_parser.set_defaults(func=train)

    link_parser = actions.add_parser("link", help="link a person table into customers")
    link_parser.add_argument("input", type=Path, metavar="INPUT",
                             help="person table (.csv or .parquet)")
    link_parser.add_argument("--out", type=Path, required=True, metavar="OUTPUT",
                             help="record_id, customer_id, match_probability (.csv/.parquet)")
    link_parser.add_argument("--train", action="store_true",
                             help="train on INPUT first (and register the model)")
    link_parser.add_argument("--threshold", type=float, default=None,
                             help="match probability that links (default: the model's)")
    link_parser.add_argument("--backend", choices=("duckdb", "spark"), default="duckdb")
    link_parser.add_argument("--model", default="champion",
                             help="champion (default; the packaged model if none), default, "
                                  "or a version number")
    link_parser.add_argument("--labels", type=Path, default=None,
                             help="with --train: true labels for the run's metrics")
    shared(link_parser)
    link_parser.set_defaults(func=link)

    promote_parser = actions.add_parser("promote", help="make a version the champion unless "
                                        "it regresses on the labelled evaluation set")
    promote_parser.add_argument("version", metavar="VERSION")
    promote_parser.add_argument("--force", action="store_true",
                                help="promote even if it regresses")
    promote_parser.add_argument("--eval", type=Path, default=None,
                                help="labelled evaluation person table (default: a generated "
                                     f"retailer, {EVAL_CUSTOMERS} customers, seed {EVAL_SEED})")
    promote_parser.add_argument("--labels", type=Path, default=None,
                                help="labels of --eval (record_id, person_id)")
    shared(promote_parser)
    promote_parser.set_defaults(func=promote)

    relink_parser = actions.add_parser(
        "relink", help="reprocess the identity store's history with the champion model: "
        "merges and splits through the change log, ids kept stable (the embedded store: "
        "with the identity service stopped)")
    relink_parser.add_argument("--model", default="champion",
                               help="champion (default; the packaged model if none), "
                                    "default, or a version number")
    store_option(relink_parser)
    shared(relink_parser)
    relink_parser.set_defaults(func=relink)
