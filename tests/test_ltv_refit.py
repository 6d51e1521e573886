"""`cdp ltv refit`: one command reads the purchases from the running profile service (real
gRPC servers), fits, registers cdp-ltv, scores every customer who bought and writes the
scores to the profiles (read back through the gateway's `GET /v1/customers/{id}/scores`);
`cdp ltv score --profile-addr` writes a table's scores the same way."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pyarrow.parquet as pq

from omnicdp.cli.main import main
from omnicdp.core import tracking
from omnicdp.services.attribution.ltv import simulate
from omnicdp.services.attribution.ltv.bgnbd import BGNBD
from omnicdp.services.attribution.ltv.gamma_gamma import GammaGamma
from omnicdp.services.profile.client import EventIn, ProfileClient
from tests.gateway_kit import WRITER, auth


def test_refit_fits_registers_and_scores_from_the_profile_service(services, client, tmp_path,
                                                                   capsys) -> None:
    purchases = simulate.transaction_table(
        100, BGNBD(r=1.0, alpha=30.0, a=0.5, b=5.0), GammaGamma(p=5.0, q=4.0, gamma=60.0),
        date(2025, 1, 1), 60, date(2025, 12, 31), seed=9).to_pylist()
    events = [EventIn(message_id=f"order-{i}", type="track", channel="store", source="pos",
                      event="Order Completed",
                      # Noon UTC: the same day in Moscow, where refit dates purchases.
                      timestamp=datetime.fromisoformat(p["timestamp"]).replace(hour=12,
                                                                               tzinfo=UTC),
                      identifiers={"email": f"{p['customer_id']}@mail.ru"},
                      properties={"revenue": p["amount"], "order_id": f"o{i}"})
              for i, p in enumerate(purchases)]
    # Not purchases: opened e-mails of the same customers.
    events += [EventIn(message_id=f"open-{i}", type="track", channel="email", source="esp",
                       event="Email Opened", timestamp=datetime(2025, 6, 1, tzinfo=UTC),
                       identifiers={"email": f"c{i}@mail.ru"}) for i in range(20)]
    profile_of: dict[str, str] = {}  # the simulated customer -> the profile's id
    profiles = ProfileClient(services.address(services.profile))
    try:
        for start in range(0, len(events), 500):
            results = profiles.ingest(events[start:start + 500])
            assert {r.status for r in results} == {"accepted"}, results[:2]
            for sent, result in zip(events[start:start + 500], results, strict=True):
                profile_of[sent.identifiers["email"].removesuffix("@mail.ru")] = (
                    result.customer_id)
    finally:
        profiles.close()
    out = tmp_path / "scores.parquet"
    assert main(["ltv", "refit", "--profile-addr", services.address(services.profile),
                 "--time-unit", "day", "--out", str(out), "--data-dir", str(tmp_path),
                 "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    days = {(p["customer_id"], p["timestamp"]) for p in purchases}
    assert result["calibration"]["transactions"] == len(purchases)
    assert result["bgnbd"]["customers"] == 100
    assert result["validation"]["actual_purchases"] > 0
    scores = pq.read_table(out).to_pandas()
    assert len(scores) == 100 == result["scores"]["customers"]
    # Every purchase day was counted: first purchases plus repeat ones.
    assert len(scores) + scores["frequency"].sum() == len(days)
    assert scores["p_alive"].between(0, 1).all()
    registry = tracking.client(tracking.tracking_uri(tmp_path))
    version = registry.get_model_version("cdp-ltv", result["model"]["version"])
    assert result["scores"]["model_version"] == str(version.version)

    # The scores are on the profiles, with the registered version.
    assert result["scores"]["profile_scores"]["customers"] == {
        "stored": 100, "unchanged": 0, "not_found": 0}
    for row in scores.to_dict("records"):
        answer = client.get(f"/v1/customers/{row['customer_id']}/scores",
                            headers=auth(WRITER))
        assert answer.status_code == 200
        got = answer.json()["scores"]
        assert {name: s["value"] for name, s in got.items()} == {
            "ltv_clv": row["clv"], "p_alive": row["p_alive"],
            "expected_purchases": row["expected_purchases"],
            "expected_spend": row["expected_spend"]}
        assert {(s["model"], s["version"]) for s in got.values()} == {
            ("cdp-ltv", str(version.version))}

    # `cdp ltv score` writes a table's scores too; an id no profile has is counted apart.
    table = tmp_path / "purchases.csv"
    table.write_text("customer_id,timestamp,amount\n" + "".join(
        f"{profile_of[p['customer_id']]},{p['timestamp']},{p['amount']}\n"
        for p in purchases) + "nobody,2025-06-01,10\n")
    assert main(["ltv", "score", str(table), "--profile-addr",
                 services.address(services.profile), "--data-dir", str(tmp_path),
                 "--json"]) == 0
    written = json.loads(capsys.readouterr().out)["profile_scores"]
    assert written["customers"] == {"stored": 100, "unchanged": 0, "not_found": 1}
