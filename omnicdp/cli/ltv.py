"""`cdp ltv fit | score | promote | refit`: lifetime value (PRODUCT.md). Imported to build
the parser (light); what a command runs is imported when it runs."""

from __future__ import annotations

import argparse
import json
import os
from datetime import date
from pathlib import Path

from omnicdp.cli import common
from omnicdp.core.errors import DomainError, FieldViolation, InvalidArgument

# How many customers' scores the human-readable output lists (the most valuable first).
TOP_CUSTOMERS = 10


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def _round(value: object) -> object:
    """Figures for people: 4 significant decimals at most."""
    return f"{value:,.4f}" if isinstance(value, float) else value


def _print_fit(report: dict) -> None:
    from omnicdp.cli.tables import print_table

    bgnbd, spend = report["bgnbd"], report["gamma_gamma"]
    calibration = report["calibration"]
    print_table(
        f"BG/NBD on {bgnbd['customers']:,} customers, calibration {calibration['start']} to "
        f"{calibration['end']} (time in {report['time_unit']}s); log-likelihood "
        f"{bgnbd['log_likelihood']:,.2f}",
        [(name, _round(bgnbd[name]), _round(bgnbd["standard_errors"][name]))
         for name in ("r", "alpha", "a", "b")], headers=("parameter", "estimate", "std. error"))
    print_table(
        f"Gamma-Gamma on {spend['customers']:,} repeat customers' mean repeat spend; expected "
        f"mean spend {_round(spend['mean_spend'])}",
        [(name, _round(spend[name]), _round(spend["standard_errors"][name]))
         for name in ("p", "q", "gamma")], headers=("parameter", "estimate", "std. error"))
    for warning in report["warnings"]:
        print(f"warning: {warning}")
    validation = report["validation"]
    if validation is None:
        print(f"no holdout validation: {report['validation_note']}")
        return
    rows = [(b["frequency"], b["customers"], _round(b["actual"]), _round(b["predicted"]))
            for b in validation["by_frequency"]]
    rows.append(("all", validation["customers"], validation["actual_purchases"],
                 _round(validation["predicted_purchases"])))
    print_table(
        f"Holdout after {validation['calibration_end']} to {validation['holdout_end']}: mean "
        f"purchases by calibration frequency; MAE {validation['mae']:.4f} per customer, total "
        f"error {validation['purchases_error']:+.1%} ({report['validation_note']})", rows,
        headers=("repeat purchases", "customers", "actual", "predicted"))
    if report.get("model"):
        print(f"registered as {report['model']['name']} version {report['model']['version']}")


def _fit_and_log(args: argparse.Namespace, source: Path | object, report,  # noqa: ANN001
                 label: str) -> tuple[object, dict]:
    """Fit, then log and register unless told not to: the fit and its report."""
    from omnicdp.services.attribution.ltv.fit import fit_transactions

    fit = fit_transactions(source, args.calibration_end, args.time_unit, progress=report)
    result = fit.to_dict()
    result["model"] = None
    if not args.no_register:
        from omnicdp.services.attribution.ltv.registry import MODEL_NAME, log_fit

        report("logging the fit to MLflow and registering the model")
        version, run_id = log_fit(fit, common.tracking(args), source=label)
        result["model"] = {"name": MODEL_NAME, "version": version, "run_id": run_id}
    return fit, result


def fit(args: argparse.Namespace) -> int:
    report = common.progress("cdp ltv fit")
    try:
        _, result = _fit_and_log(args, args.transactions, report, str(args.transactions))
    except DomainError as error:
        return common.fail("cdp ltv fit", error)
    if args.json:
        print(json.dumps(result))
    else:
        _print_fit(result)
    return 0


def _scores_result(args: argparse.Namespace, scores, version: str, as_of: date,  # noqa: ANN001
                   report) -> dict:  # noqa: ANN001
    """Write the scores if asked, and what to print about them."""
    from omnicdp.services.attribution.ltv.scoring import write_scores

    if args.out is not None:
        write_scores(scores, args.out)
        report(f"wrote {scores.num_rows:,} rows to {args.out}")
    columns = {name: scores.column(name).to_numpy() for name in
               ("p_alive", "expected_purchases", "clv")}
    order = columns["clv"].argsort()[::-1][:TOP_CUSTOMERS]
    return {"model_version": version, "as_of": as_of.isoformat(),
            "customers": scores.num_rows, "months": args.months,
            "monthly_discount": args.discount,
            "total_clv": float(columns["clv"].sum()),
            "expected_purchases": float(columns["expected_purchases"].sum()),
            "mean_p_alive": float(columns["p_alive"].mean()) if scores.num_rows else None,
            "out": str(args.out) if args.out else None,
            "top": [{"customer_id": scores.column("customer_id")[int(i)].as_py(),
                     "clv": float(columns["clv"][i]), "p_alive": float(columns["p_alive"][i])}
                    for i in order]}


def set_profile_scores(profile_addr: str, scores, version: str,  # noqa: ANN001
                       report) -> dict:  # noqa: ANN001
    """Write the score table's scores to the profile service (``SetScores``, a page of
    customers a call) as computed now by ``cdp-ltv`` ``version``; what became of them."""
    from datetime import UTC, datetime

    from omnicdp.services.attribution.ltv.registry import MODEL_NAME
    from omnicdp.services.attribution.ltv.scoring import PROFILE_SCORES, profile_score_batches
    from omnicdp.services.profile.client import CustomerScores, ProfileClient, Score

    computed_at = datetime.now(UTC)
    model_version = version or "unregistered"
    counts = {"stored": 0, "unchanged": 0, "not_found": 0}
    profiles = ProfileClient(profile_addr)
    try:
        for page in profile_score_batches(scores):
            results = profiles.set_scores([
                CustomerScores(customer, tuple(Score(name, value, MODEL_NAME, model_version,
                                                     computed_at)
                                               for name, value in values.items()))
                for customer, values in page if values])
            for result in results:
                counts[result.status] += 1
            report(f"scores of {sum(counts.values()):,} of {scores.num_rows:,} customers "
                   f"written to the profile service")
    finally:
        profiles.close()
    return {"profile_addr": profile_addr, "model": MODEL_NAME, "version": model_version,
            "names": sorted(PROFILE_SCORES), "computed_at": computed_at.isoformat(),
            "customers": counts}


def _print_scores(result: dict) -> None:
    from omnicdp.cli.tables import print_table

    print_table(
        f"{result['customers']:,} customers as of {result['as_of']}: expected value over "
        f"{result['months']} months (discount {result['monthly_discount']:.2%} a month) "
        f"{result['total_clv']:,.2f}, {result['expected_purchases']:,.1f} purchases",
        [(row["customer_id"], f"{row['clv']:,.2f}", f"{row['p_alive']:.3f}")
         for row in result["top"]], headers=("customer", "CLV", "P(alive)"))
    written = result.get("profile_scores")
    if written:
        counts = written["customers"]
        print(f"scores ({', '.join(written['names'])}) of {written['model']} "
              f"{written['version']} written to the profile service at "
              f"{written['profile_addr']}: {counts['stored']:,} customers stored, "
              f"{counts['unchanged']:,} unchanged, {counts['not_found']:,} unknown")


def score(args: argparse.Namespace) -> int:
    from omnicdp.services.attribution.ltv.registry import load
    from omnicdp.services.attribution.ltv.scoring import Horizon
    from omnicdp.services.attribution.ltv.scoring import score as score_customers
    from omnicdp.services.attribution.ltv.summary import TransactionDays

    report = common.progress("cdp ltv score")
    try:
        _check_out(args.out)
        horizon = Horizon(args.months, args.discount)
        model = load(common.tracking(args), args.model)
        with TransactionDays(args.transactions, report) as days:
            summary = days.summary(args.as_of, unit=model.time_unit)
        report(f"scoring {summary.customers:,} customers as of {summary.calibration_end} "
               f"with cdp-ltv {model.version}")
        scores = score_customers(model, summary, horizon)
        result = _scores_result(args, scores, model.version, summary.calibration_end, report)
        if args.profile_addr:
            result["profile_scores"] = set_profile_scores(args.profile_addr, scores,
                                                          model.version, report)
    except DomainError as error:
        return common.fail("cdp ltv score", error)
    if args.json:
        print(json.dumps(result))
    else:
        _print_scores(result)
    return 0


def refit(args: argparse.Namespace) -> int:
    """Read the purchases from the profile service, fit, register, score: one command for a
    scheduler."""
    from omnicdp.services.attribution.ltv.refit import refit as run_refit
    from omnicdp.services.attribution.ltv.registry import MODEL_NAME
    from omnicdp.services.attribution.ltv.scoring import Horizon
    from omnicdp.services.attribution.ltv.transactions import from_stored_events, time_zone
    from omnicdp.services.profile.client import ProfileClient

    report = common.progress("cdp ltv refit")
    try:
        _check_out(args.out)
        horizon = Horizon(args.months, args.discount)
        zone = time_zone(args.time_zone)
        report(f"reading purchases from the profile service at {args.profile_addr}")
        profiles = ProfileClient(args.profile_addr)
        try:
            transactions = from_stored_events(profiles.all_events(), zone)
        finally:
            profiles.close()
        report(f"{transactions.num_rows:,} purchases")
        done = run_refit(transactions, "" if args.no_register else common.tracking(args),
                         args.calibration_end, args.time_unit, horizon, args.as_of,
                         source=f"profile service {args.profile_addr}", progress=report)
        result = done.fit.to_dict()
        result["model"] = ({"name": MODEL_NAME, "version": done.model.version,
                            "run_id": done.run_id} if done.model.version else None)
        result["scores"] = _scores_result(args, done.scores, done.model.version, done.as_of,
                                          report)
        result["scores"]["profile_scores"] = set_profile_scores(
            args.profile_addr, done.scores, done.model.version, report)
    except DomainError as error:
        return common.fail("cdp ltv refit", error)
    if args.json:
        print(json.dumps(result))
    else:
        _print_fit(result)
        _print_scores(result["scores"])
    return 0


def promote(args: argparse.Namespace) -> int:
    from omnicdp.services.attribution.ltv.registry import promote as move_champion
    from omnicdp.services.attribution.ltv.summary import TransactionDays
    from omnicdp.services.attribution.ltv.validation import validate

    report = common.progress("cdp ltv promote")
    try:
        with TransactionDays(args.transactions, report) as days:
            split = args.calibration_end or days.default_split()
            summaries = {}

            def evaluate(model):  # noqa: ANN001, ANN202
                report(f"validating version {model.version} on the holdout after {split}")
                if model.time_unit not in summaries:
                    summaries[model.time_unit] = days.summary(split, unit=model.time_unit)
                return validate(model.bgnbd, model.gamma_gamma, summaries[model.time_unit])

            promotion = move_champion(common.tracking(args), args.version, evaluate,
                                      force=args.force)
    except DomainError as error:
        return common.fail("cdp ltv promote", error)
    result = {"version": promotion.version, "previous": promotion.previous,
              "promoted": True, "reason": promotion.reason,
              "candidate": promotion.candidate.to_dict(),
              "champion": promotion.champion.to_dict() if promotion.champion else None}
    if args.json:
        print(json.dumps(result))
    else:
        from omnicdp.cli.tables import print_table

        rows = [(k, _round(getattr(promotion.candidate, k)),
                 _round(getattr(promotion.champion, k)) if promotion.champion else "-")
                for k in ("mae", "rmse", "purchases_error")]
        print_table(f"version {promotion.version} is champion ({promotion.reason})", rows,
                    headers=("holdout", f"version {promotion.version}",
                             f"previous {promotion.previous or '-'}"))
    return 0


def _check_out(out: Path | None) -> None:
    if out is not None and out.suffix.lower() not in (".csv", ".parquet"):
        raise InvalidArgument(f"--out {out} must end in .csv or .parquet",
                              [FieldViolation("out", "unknown format")])


def add_parser(commands: argparse._SubParsersAction) -> None:
    """`cdp ltv ...` (light: nothing heavy is imported to build it)."""
    ltv = commands.add_parser("ltv", help="lifetime value: BG/NBD and Gamma-Gamma")
    actions = ltv.add_subparsers(dest="action", required=True, metavar="ACTION")

    def fitting(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--calibration-end", type=_date, default=None, metavar="DATE",
                            help="last day of the calibration period (YYYY-MM-DD): the "
                                 "models are fitted up to it and validated on the purchases "
                                 "after it (default: fitted on everything, validated by a "
                                 "second fit on the first two thirds of the days)")
        parser.add_argument("--time-unit", choices=("day", "week"), default="week",
                            help="unit of recency, age and alpha (default week)")
        parser.add_argument("--no-register", action="store_true",
                            help="do not log the fit to MLflow nor register it as cdp-ltv")

    def scoring(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--months", type=int, default=12,
                            help="horizon of expected purchases and value (default 12)")
        parser.add_argument("--discount", type=float, default=0.01,
                            help="monthly discount rate of the value (default 0.01)")
        parser.add_argument("--as-of", type=_date, default=None, metavar="DATE",
                            help="score as of this day (default: the last purchase's)")

    def shared(parser: argparse.ArgumentParser) -> None:
        common.add_tracking_arguments(parser)
        parser.add_argument("--json", action="store_true", help="print the result as JSON")

    fit_parser = actions.add_parser(
        "fit", help="fit BG/NBD and Gamma-Gamma on a transaction table, validate on a "
        "holdout, and register the model in MLflow")
    fit_parser.add_argument("transactions", type=Path, metavar="TRANSACTIONS",
                            help="customer_id, timestamp (ISO date or datetime), amount "
                                 "(.csv or .parquet)")
    fitting(fit_parser)
    shared(fit_parser)
    fit_parser.set_defaults(func=fit)

    score_parser = actions.add_parser(
        "score", help="score each customer of a transaction table with a registered model: "
        "P(alive), expected purchases and value")
    score_parser.add_argument("transactions", type=Path, metavar="TRANSACTIONS")
    score_parser.add_argument("--out", type=Path, default=None, metavar="FILE",
                              help="write the scores (.csv or .parquet)")
    score_parser.add_argument("--profile-addr", default=None, metavar="ADDR",
                              help="also write the scores to the profile service at "
                                   "host:port (SetScores; the table's customer ids must be "
                                   "the profile's)")
    score_parser.add_argument("--model", default="serving",
                              help="serving (default: the champion if set, else the latest), "
                                   "latest, or a version number")
    scoring(score_parser)
    shared(score_parser)
    score_parser.set_defaults(func=score)

    promote_parser = actions.add_parser(
        "promote", help="make a version the champion (what `score` uses) unless it predicts "
        "a holdout of TRANSACTIONS worse than the champion does")
    promote_parser.add_argument("version", metavar="VERSION")
    promote_parser.add_argument("--transactions", type=Path, required=True,
                                help="the table whose holdout judges both models")
    promote_parser.add_argument("--calibration-end", type=_date, default=None, metavar="DATE",
                                help="where the holdout starts (default: the last third of "
                                     "the table's days)")
    promote_parser.add_argument("--force", action="store_true",
                                help="promote even if it regresses")
    shared(promote_parser)
    promote_parser.set_defaults(func=promote)

    refit_parser = actions.add_parser(
        "refit", help="read the purchases from the running profile service, fit, register, "
        "score, and write the scores to the profiles (a scheduled refit)")
    refit_parser.add_argument("--profile-addr",
                              default=os.environ.get("CDP_PROFILE_ADDR", "127.0.0.1:50052"),
                              help="host:port of the profile service (env CDP_PROFILE_ADDR)")
    refit_parser.add_argument("--time-zone", default="Europe/Moscow",
                              help="the business's time zone, which dates purchases "
                                   "(default Europe/Moscow)")
    refit_parser.add_argument("--out", type=Path, default=None, metavar="FILE",
                              help="write the scores (.csv or .parquet)")
    fitting(refit_parser)
    scoring(refit_parser)
    shared(refit_parser)
    refit_parser.set_defaults(func=refit)
