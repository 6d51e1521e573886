"""`cdp demo`: the main job on embedded defaults, from nothing.

Generates a synthetic omnichannel retailer, starts the whole system (`cdp up`), sends every
event through the partner gateway, then shows what came out: ingestion counts, how well
the golden records match the true persons, a profile looked up by phone, and the
attribution report, and lifetime value fitted on the stored purchases (registered as
cdp-ltv). Writes an HTML report beside the data.
"""

from __future__ import annotations

import csv
import html
import json
import shutil
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from omnicdp.cli.supervisor import Stack, StartupError
from omnicdp.cli.tables import print_table
from omnicdp.core.errors import DomainError
from omnicdp.core.vocabulary import MAX_BATCH_EVENTS
from omnicdp.services.identity.linkage.metrics import pairwise_quality

console = Console(stderr=True)


class Gateway:
    def __init__(self, url: str, key: str) -> None:
        self.url, self.key = url, key

    def call(self, path: str, body: dict | None = None) -> tuple[int, Any]:
        request = urllib.request.Request(
            self.url + path, method="POST" if body is not None else "GET",
            data=json.dumps(body, ensure_ascii=False).encode() if body is not None else None,
            headers={"Authorization": f"Bearer {self.key}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"{}")


def report(gateway: Gateway, path: str) -> dict:
    """A report, polling its operation while the gateway answers 202."""
    status, body = gateway.call(path)
    while status == 202:
        time.sleep(1)
        status, body = gateway.call(f"/v1/reports/attribution/{body['name']}")
    if status != 200:
        raise RuntimeError(f"gateway answered {status} for the attribution report: {body}")
    return body


def final_customer_ids(gateway: Gateway, customer_ids: set[str]) -> dict[str, str]:
    """Each id answered at ingestion, mapped to the customer it stands for now."""
    final = {}
    for customer_id in sorted(customer_ids):
        status, profile = gateway.call(f"/v1/profiles/{urllib.parse.quote(customer_id)}")
        if status != 200:
            raise RuntimeError(f"gateway answered {status} for a customer it acknowledged")
        final[customer_id] = profile["customer_id"]
    return final


def send_events(gateway: Gateway, events_path: Path) -> tuple[Counter, dict[str, str], Counter]:
    events = [json.loads(line) for line in events_path.read_text().splitlines() if line]
    statuses: Counter = Counter()
    reasons: Counter = Counter()
    assigned: dict[str, str] = {}
    with Progress(TextColumn("sending events"), BarColumn(), TextColumn("{task.completed}/"
                  "{task.total}"), TimeRemainingColumn(), console=console) as progress:
        task = progress.add_task("send", total=len(events))
        for start in range(0, len(events), MAX_BATCH_EVENTS):
            batch = events[start:start + MAX_BATCH_EVENTS]
            status, body = gateway.call("/v1/events", {"events": batch})
            if status != 200:
                raise RuntimeError(f"gateway answered {status}: {body}")
            for result in body["results"]:
                statuses[result["status"]] += 1
                if result.get("customer_id"):
                    assigned[result["message_id"]] = result["customer_id"]
                for violation in result.get("violations") or []:
                    reasons[f"rejected: {violation['field']}"] += 1
                for warning in result.get("warnings") or []:
                    reasons[f"warning: {warning['field']} not used for linking"] += 1
            progress.advance(task, len(batch))
    return statuses, assigned, reasons


def _bars(rows: list[tuple[str, float]], unit: str) -> str:
    top = max((v for _, v in rows), default=1) or 1
    return "".join(
        f"<div class=row><span>{html.escape(name)}</span><div class=bar style='width:"
        f"{60 * value / top:.1f}%'></div><b>{value:,.2f} {unit}</b></div>" for name, value in rows)


def write_html(path: Path, summary: dict[str, Any]) -> None:
    attribution = summary["attribution"]["channels"]
    quality = summary["identity"]
    ltv = summary["ltv"]
    path.write_text(f"""<!doctype html><meta charset=utf-8><title>omnicdp demo</title>
<style>body{{font-family:sans-serif;max-width:900px;margin:2em auto}}
.row{{display:flex;align-items:center;gap:.5em;margin:.2em 0}}
.row span{{width:9em}}.bar{{background:#3b7dd8;height:1em}}td,th{{padding:.2em .8em}}</style>
<h1>omnicdp demo</h1>
<h2>Ingestion</h2><table>{"".join(
    f"<tr><th>{html.escape(str(k))}</th><td>{v}</td></tr>"
    for k, v in [*((k, v) for k, v in summary["ingestion"].items() if not isinstance(v, dict)),
                 *summary["ingestion"]["problems_by_field"].items()])}</table>
<h2>Identity model</h2>
<p>cdp-identity version {html.escape(str(summary["identity_model"]["version"]))}, trained on the
retailer's person table and promoted: pairwise precision
{summary["identity_model"]["quality"]["precision"]:.3f}, recall
{summary["identity_model"]["quality"]["recall"]:.3f}, F1
{summary["identity_model"]["quality"]["f1"]:.3f} on its records.</p>
<h2>Golden records vs true persons (final ids, after every merge)</h2>
<p>{quality["customers"]} customers for {quality["persons"]} true persons; pairwise precision
{quality["precision"]:.3f}, recall {quality["recall"]:.3f}, F1 {quality["f1"]:.3f}.</p>
<h2>Revenue by channel (last touch)</h2>
{_bars([(k, v["revenue"]) for k, v in attribution.items()], "RUB")}
<h2>Conversions by channel (last touch)</h2>
{_bars([(k, v["conversions"]) for k, v in attribution.items()], "")}
{_ltv_html(ltv)}""")


def _ltv_html(ltv: dict[str, Any]) -> str:
    if "skipped" in ltv:
        return f"<h2>Lifetime value</h2><p>skipped: {html.escape(ltv['skipped'])}</p>"
    return f"""<h2>Lifetime value (cdp-ltv {html.escape(str(ltv["version"]))})</h2>
<p>BG/NBD and Gamma-Gamma on {ltv["customers"]} buyers' {ltv["purchases"]} purchases (all
channels): expected value over 12 months {ltv["total_clv"]:,.0f} RUB. Holdout:
{html.escape(ltv["holdout"])}.
{"".join(f"<br>{html.escape(w)}" for w in ltv["warnings"])}</p>
<h3>Most valuable customers</h3><table><tr><th>customer</th><th>CLV (RUB)</th>
<th>P(alive)</th></tr>{"".join(
    f"<tr><td>{html.escape(c['customer_id'])}</td><td>{c['clv']:,.0f}</td>"
    f"<td>{c['p_alive']:.3f}</td></tr>" for c in ltv["top"])}</table>
"""


def run_demo(data_dir: Path, customers: int = 300, seed: int = 7, as_json: bool = False) -> int:
    from omnicdp.synth import generate_retailer

    data_dir = data_dir.resolve()
    if data_dir.exists():
        shutil.rmtree(data_dir)
    retailer = data_dir / "retailer"
    started = time.monotonic()
    console.print(f"generating a retailer with {customers} customers (seed {seed})")
    generate_retailer(customers, seed, retailer)
    stack = Stack(data_dir=data_dir / "system")
    try:
        stack.start(progress=lambda m: console.print(m))
    except StartupError as error:
        console.print(f"[red]cdp demo: {error}")
        return 1
    try:
        model = train_and_promote(retailer, stack)
        gateway = Gateway(stack.gateway_url, stack.api_key or "")
        statuses, assigned, reasons = send_events(gateway, retailer / "events.jsonl")
        with open(retailer / "events_truth.csv", newline="") as handle:
            truth = {row["message_id"]: row["person_id"] for row in csv.DictReader(handle)}
        # Scored on the ids after every merge: an id answered early may since have been
        # merged into another customer, and then names the same golden record.
        final = final_customer_ids(gateway, set(assigned.values()))
        quality = pairwise_quality({m: final[c] for m, c in assigned.items()},
                                   truth).to_dict()
        attribution = report(gateway, "/v1/reports/attribution?model=last_touch")
        try:
            ltv = lifetime_value(stack)
        except DomainError as error:  # e.g. too few customers bought twice
            ltv = {"skipped": str(error)}
        sample = _sample_profile(gateway, retailer / "events.jsonl")  # with its scores
    finally:
        stack.stop()
    summary = {
        "ingestion": {"accepted": statuses["accepted"], "duplicate": statuses["duplicate"],
                      "rejected": statuses["rejected"],
                      "problems_by_field": dict(reasons.most_common())},
        "identity": quality,
        "identity_model": model,
        "sample_profile": sample,
        "attribution": attribution,
        "ltv": ltv,
        "seconds": round(time.monotonic() - started, 1),
        "report": str(data_dir / "report.html"),
    }
    write_html(data_dir / "report.html", summary)
    if as_json:
        print(json.dumps(summary, ensure_ascii=False, default=str))
        return 0
    print_table("ingestion through the gateway",
                [(k, v) for k, v in summary["ingestion"].items() if k != "problems_by_field"]
                + reasons.most_common(6),
                headers=("", "events"))
    print_table(f"identity model cdp-identity {model['version']}, trained on the retailer's "
                "person table and promoted (quality on its records)",
                [(k, f"{v:.3f}") for k, v in model["quality"].items()]
                + [("training seconds", f"{model['train_seconds']:.1f}")],
                headers=("", "value"))
    print_table("golden records vs the true persons (pairwise over events, final ids)", [
        ("true persons", quality["persons"]), ("customers (golden records)", quality["customers"]),
        ("precision", f"{quality['precision']:.3f}"), ("recall", f"{quality['recall']:.3f}"),
        ("F1", f"{quality['f1']:.3f}")], headers=("", "value"))
    if sample:
        print_table(f"a profile looked up by phone: {sample['customer_id']}", [
            *((t, ", ".join(v)) for t, v in sample["identifiers"].items()),
            *((k, v) for k, v in sample["traits"].items()),
            ("events", sample["event_count"])], headers=("field", "value"))
    print_table(f"last-touch attribution: {attribution['total_conversions']} conversions, "
                f"{attribution['total_revenue']:,.0f} RUB", [
                    (k, f"{v['conversions']:.0f}", f"{v['revenue']:,.0f}")
                    for k, v in attribution["channels"].items()],
                headers=("channel", "conversions", "revenue"))
    if "skipped" in ltv:
        print(f"lifetime value skipped: {ltv['skipped']}")
    else:
        _print_ltv(ltv)
    print(f"report: {summary['report']}  ({summary['seconds']} s)")
    sys.stdout.flush()
    return 0


def _print_ltv(ltv: dict[str, Any]) -> None:
    print_table(f"lifetime value: cdp-ltv {ltv['version']} on {ltv['customers']} buyers' "
                f"{ltv['purchases']} purchases; 12-month value {ltv['total_clv']:,.0f} RUB", [
                    *((k, f"{v:.4g}") for k, v in ltv["bgnbd"].items()),
                    *((k, f"{v:.4g}") for k, v in ltv["gamma_gamma"].items()),
                    ("holdout", ltv["holdout"])],
                headers=("", "value"))
    for warning in ltv["warnings"]:
        print(f"LTV warning: {warning}")


def train_and_promote(retailer: Path, stack: Stack) -> dict[str, Any]:
    """Train an identity model on the retailer's person table (with its true persons as
    labels), register it in the stack's MLflow store, promote it and have the identity
    service serve it: events then resolve with it."""
    from omnicdp.core.tracking import tracking_uri
    from omnicdp.services.identity.client import IdentityClient
    from omnicdp.services.identity.linkage.batch import link_table
    from omnicdp.services.identity.linkage.registry import log_training, promote
    from omnicdp.services.identity.linkage.table import read_person_table
    from omnicdp.services.identity.linkage.train import train_table

    console.print("training an identity model on the retailer's person table")
    table = read_person_table(retailer / "persons.csv")
    truth_table = read_person_table(retailer / "persons_truth.csv")
    labels = dict(zip(truth_table["record_id"], truth_table["person_id"], strict=True))
    result = train_table(table, labels=labels)
    uri = tracking_uri(stack.data_dir)
    version = log_training(result, uri, source="demo: persons.csv")

    def evaluate(model):  # noqa: ANN001, ANN202
        links = link_table(table, model).links
        return pairwise_quality(dict(zip(links["record_id"], links["customer_id"],
                                         strict=True)), labels)

    promotion = promote(uri, version, evaluate)
    client = IdentityClient(stack.addresses["identity"])
    try:
        serving, _ = client.reload_model()
    finally:
        client.close()
    console.print(f"cdp-identity {version} promoted ({promotion.reason}); identity serves "
                  f"version {serving}")
    quality = promotion.candidate.to_dict()
    return {"version": serving, "train_seconds": round(result.metrics["train_seconds"], 1),
            "quality": {k: quality[k] for k in ("precision", "recall", "f1")}}


def lifetime_value(stack: Stack) -> dict[str, Any]:
    """`cdp ltv refit` on the stack: the purchases from the profile service, fitted,
    registered as cdp-ltv in the stack's MLflow store, scored, and the scores written to the
    profiles."""
    from omnicdp.cli.ltv import set_profile_scores
    from omnicdp.core.tracking import tracking_uri
    from omnicdp.services.attribution.ltv.refit import refit
    from omnicdp.services.attribution.ltv.transactions import (
        DEFAULT_TIME_ZONE,
        from_stored_events,
        time_zone,
    )
    from omnicdp.services.profile.client import ProfileClient

    console.print("fitting lifetime value (BG/NBD, Gamma-Gamma) on the stored purchases")
    profiles = ProfileClient(stack.addresses["profile"])
    try:
        transactions = from_stored_events(profiles.all_events(),
                                          time_zone(DEFAULT_TIME_ZONE))
    finally:
        profiles.close()
    done = refit(transactions, tracking_uri(stack.data_dir), source="cdp demo")
    written = set_profile_scores(stack.addresses["profile"], done.scores, done.model.version,
                                 lambda _message: None)
    scores = done.scores.sort_by([("clv", "descending")])
    validation = done.fit.validation
    return {"version": done.model.version, "customers": done.scores.num_rows,
            "profile_scores": written["customers"],
            "purchases": transactions.num_rows,
            "bgnbd": done.model.bgnbd.to_dict(), "gamma_gamma": done.model.gamma_gamma.to_dict(),
            "total_clv": float(done.scores.column("clv").to_numpy().sum()),
            "holdout": (f"{validation.actual_purchases} purchases after "
                        f"{validation.calibration_end}, {validation.predicted_purchases:.0f} "
                        "predicted" if validation else done.fit.validation_note),
            "warnings": done.fit.warnings(),
            "top": scores.select(["customer_id", "clv", "p_alive"]).slice(0, 5).to_pylist()}


def _sample_profile(gateway: Gateway, events_path: Path) -> dict[str, Any] | None:
    """The profile of the first store purchase's phone, to show a golden record."""
    for line in events_path.read_text().splitlines():
        event = json.loads(line)
        phone = event.get("identifiers", {}).get("phone")
        if event.get("channel") == "store" and phone:
            status, profile = gateway.call(
                "/v1/profiles:lookup?" + urllib.parse.urlencode({"type": "phone", "value": phone}))
            if status == 200:
                return profile
    return None
