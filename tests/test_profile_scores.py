"""Scores per customer over real gRPC, on both backends: SetScores and GetCustomerScores
round-trip with the model and version, profiles carry them, a rewrite of the same scores
changes nothing and an older one loses to the stored, merged-away ids write to the survivor
and unknown ids are reported per entry, a merge keeps the newest per name, a split leaves
them with the part that keeps the id."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import grpc
import pytest

from omnicdp.api.profile.v1 import profile_pb2
from omnicdp.core import protoconv
from omnicdp.services.profile.model import CustomerScores, Score
from tests import test_profile_store as contract
from tests.test_profile_service import event, ingest
from tests.test_profile_store import stored

store_url, store, log = contract.store_url, contract.store, contract.log

AT = datetime(2026, 3, 10, 4, 0, tzinfo=UTC)
STORED, UNCHANGED, NOT_FOUND = (profile_pb2.SCORE_WRITE_STATUS_STORED,
                                profile_pb2.SCORE_WRITE_STATUS_UNCHANGED,
                                profile_pb2.SCORE_WRITE_STATUS_NOT_FOUND)


def score(name: str, value: float, at: datetime = AT, version: str = "3") -> profile_pb2.Score:
    return profile_pb2.Score(name=name, value=value, model="cdp-ltv", model_version=version,
                             computed_at=protoconv.timestamp_from_datetime(at))


def set_scores(stub, *customers: tuple[str, list[profile_pb2.Score]]) -> list:
    return list(stub.SetScores(profile_pb2.SetScoresRequest(customers=[
        profile_pb2.CustomerScores(customer_id=c, scores=s) for c, s in customers]),
        timeout=5).results)


def scores_of(stub, customer_id: str) -> tuple[str, dict]:
    response = stub.GetCustomerScores(
        profile_pb2.GetCustomerScoresRequest(customer_id=customer_id), timeout=5)
    return response.customer_id, {
        s.name: (s.value, s.model, s.model_version,
                 s.computed_at.ToDatetime(tzinfo=UTC)) for s in response.scores}


@pytest.mark.parametrize("services", ["duckdb", "postgres"], indirect=True)
def test_scores_round_trip_and_a_rewrite_changes_nothing(services) -> None:
    stub = services.profile_stub
    [anna] = ingest(stub, event("m-1", email="anna@example.ru"))
    [boris] = ingest(stub, event("m-2", email="boris@example.ru"))
    batch = [(anna.customer_id, [score("ltv_clv", 1234.5678901234), score("p_alive", 0.875)]),
             ("nobody", [score("ltv_clv", 1.0)]),
             (boris.customer_id, [score("p_alive", 0.125)])]

    first = set_scores(stub, *batch)
    assert [(r.customer_id, r.status, r.stored_customer_id, r.scores_stored)
            for r in first] == [(anna.customer_id, STORED, anna.customer_id, 2),
                                ("nobody", NOT_FOUND, "", 0),
                                (boris.customer_id, STORED, boris.customer_id, 1)]
    expected = {"ltv_clv": (1234.5678901234, "cdp-ltv", "3", AT),
                "p_alive": (0.875, "cdp-ltv", "3", AT)}
    assert scores_of(stub, anna.customer_id) == (anna.customer_id, expected)

    again = set_scores(stub, *batch)
    assert [r.status for r in again] == [UNCHANGED, NOT_FOUND, UNCHANGED]
    # Computed before the stored one: it loses, whatever the order of arrival.
    older = set_scores(stub, (anna.customer_id, [score("p_alive", 0.1, AT - timedelta(days=7),
                                                       version="2")]))
    assert older[0].status == UNCHANGED
    assert scores_of(stub, anna.customer_id)[1] == expected
    newer = set_scores(stub, (anna.customer_id, [score("p_alive", 0.5, AT + timedelta(days=7),
                                                       version="4")]))
    assert (newer[0].status, newer[0].scores_stored) == (STORED, 1)

    profile = stub.GetProfile(profile_pb2.GetProfileRequest(customer_id=anna.customer_id),
                              timeout=5).profile
    assert dict(profile.scores) == {"ltv_clv": 1234.5678901234, "p_alive": 0.5}
    assert [(s.name, s.model_version) for s in profile.score_details] == [
        ("ltv_clv", "3"), ("p_alive", "4")]
    looked_up = stub.LookupProfile(profile_pb2.LookupProfileRequest(
        type=protoconv.identifier_type_value("email"), value="anna@example.ru"),
        timeout=5).profile
    assert dict(looked_up.scores) == dict(profile.scores)


@pytest.mark.parametrize("services", ["duckdb", "postgres"], indirect=True)
def test_a_merge_keeps_the_newest_score_of_each_name(services) -> None:
    stub = services.profile_stub
    [by_email] = ingest(stub, event("m-1", email="anna@example.ru"))
    [by_phone] = ingest(stub, event("m-2", phone="+79161234567"))
    set_scores(stub,
               (by_email.customer_id, [score("ltv_clv", 100.0, AT),
                                       score("p_alive", 0.9, AT + timedelta(days=1))]),
               (by_phone.customer_id, [score("ltv_clv", 300.0, AT + timedelta(days=2)),
                                       score("p_alive", 0.2, AT),
                                       score("churn_risk", 0.3, AT)]))
    [both] = ingest(stub, event("m-3", email="anna@example.ru", phone="+79161234567"))
    survivor = both.customer_id
    merged_away = ({by_email.customer_id, by_phone.customer_id} - {survivor}).pop()

    for asked in (survivor, merged_away):
        customer_id, scores = scores_of(stub, asked)
        assert customer_id == survivor
        assert {name: value for name, (value, *_) in scores.items()} == {
            "ltv_clv": 300.0, "p_alive": 0.9, "churn_risk": 0.3}
    # A score sent for the merged-away id lands on the survivor.
    [result] = set_scores(stub, (merged_away, [score("ltv_clv", 400.0,
                                                     AT + timedelta(days=3))]))
    assert (result.status, result.stored_customer_id) == (STORED, survivor)
    assert scores_of(stub, survivor)[1]["ltv_clv"][0] == 400.0


def test_invalid_scores_are_refused_naming_the_field(services) -> None:
    stub = services.profile_stub
    [anna] = ingest(stub, event("m-1", email="anna@example.ru"))
    bad = profile_pb2.Score(name="LTV!", value=float("nan"), model="cdp-ltv")
    with pytest.raises(grpc.RpcError) as refused:
        set_scores(stub, (anna.customer_id, [bad]))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as too_many:
        set_scores(stub, *[(f"c-{i}", [score("p_alive", 0.5)]) for i in range(1001)])
    assert too_many.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as unknown:
        stub.GetCustomerScores(profile_pb2.GetCustomerScoresRequest(customer_id="nobody"),
                               timeout=5)
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
    assert scores_of(stub, anna.customer_id) == (anna.customer_id, {})


def test_the_service_names_each_invalid_field() -> None:
    from omnicdp.core.errors import InvalidArgument
    from omnicdp.services.profile.scores import ScoreBook

    book = ScoreBook(store=None)  # type: ignore[arg-type]  # refused before the store
    bad = Score("LTV!", float("nan"), "", "3", AT + timedelta(days=2))
    with pytest.raises(InvalidArgument) as refused:
        book.set([CustomerScores("c-1", (bad, Score("p_alive", 0.5, "m", "1", AT),
                                         Score("p_alive", 0.6, "m", "1", AT)))], AT)
    assert [v.field for v in refused.value.violations] == [
        "customers[0].scores", "customers[0].scores[0].name", "customers[0].scores[0].value",
        "customers[0].scores[0].model", "customers[0].scores[0].computed_at"]


def test_a_split_leaves_the_scores_with_the_part_that_keeps_the_id(store, log) -> None:
    store.apply_changes([log.created("cA", "rA"), log.linked("cA", "rB")])
    store.append([stored("m1", "cA", record="rA"), stored("m2", "cA", record="rB")], [])
    store.set_scores([CustomerScores("cA", (Score("p_alive", 0.7, "cdp-ltv", "1", AT),))])
    store.apply_changes([log.split("cN", "cA", "rB")])
    assert store.get_profile("cA").scores == {
        "p_alive": Score("p_alive", 0.7, "cdp-ltv", "1", AT)}
    assert store.get_profile("cN").scores == {}
