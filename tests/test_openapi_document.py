"""The OpenAPI document says what the gateway sends: errors as problem+json with their
headers, enums where a parameter takes names, a nullable but always present ``message_id`` in
results; and the answers the fuzzer (test_openapi_fuzz.py) cannot provoke, provoked here and
held to the document."""

from __future__ import annotations

import pytest

from tests.gateway_kit import READER, SLOW, WRITER, assert_conforms, auth, ev

PROBLEM = "application/problem+json"


@pytest.fixture
def document(client) -> dict:
    return client.get("/openapi.json").json()


def _operations(document: dict):
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            yield path, method, operation


def test_every_error_is_declared_as_problem_json_only(document) -> None:
    checked = 0
    for path, method, operation in _operations(document):
        for status, response in operation["responses"].items():
            if int(status) >= 400:
                assert list(response["content"]) == [PROBLEM], (method, path, status)
                assert response["content"][PROBLEM]["schema"]["$ref"] in (
                    "#/components/schemas/Problem", "#/components/schemas/NotReady",
                    "#/components/schemas/SegmentProblem")
                checked += 1
    assert checked > 40
    assert "code" in document["components"]["schemas"]["Problem"]["required"]
    assert "HTTPValidationError" not in document["components"]["schemas"]


def test_each_route_declares_the_errors_it_can_answer(document) -> None:
    def statuses(path: str, method: str = "get") -> set[str]:
        return set(document["paths"][path][method]["responses"])

    assert statuses("/v1/events", "post") == {"200", "400", "401", "403", "408", "413", "415",
                                              "422", "429", "500", "503", "504"}
    for kind in ("batch", "identify", "track", "page", "screen", "alias", "group"):
        assert statuses(f"/v1/{kind}", "post") == {"200", "400", "401", "403", "408", "413",
                                                   "415", "429", "500", "503", "504"}
    assert statuses("/v1/profiles:lookup") == {"200", "400", "401", "403", "404", "422", "429",
                                               "500", "503", "504"}
    assert statuses("/v1/profiles/{customer_id}") == {"200", "400", "401", "403", "404", "429",
                                                      "500", "503", "504"}
    assert statuses("/v1/customers/{customer_id}/scores") == {
        "200", "400", "401", "403", "404", "429", "500", "503", "504"}
    assert statuses("/v1/reports/attribution") == {"200", "202", "401", "403", "409", "422", "429",
                                                   "500", "503", "504"}
    assert statuses("/v1/reports/attribution/operations/{operation_id}") == {
        "200", "202", "400", "401", "403", "404", "422", "429", "500", "503", "504"}
    assert statuses("/readyz") == {"200", "503"}
    for path, _, operation in _operations(document):
        if path.startswith("/v1/"):
            responses = operation["responses"]
            assert responses["429"]["headers"]["Retry-After"]["required"]
            assert responses["503"]["headers"]["Retry-After"]["required"]
            assert responses["401"]["headers"]["WWW-Authenticate"]["required"]


def test_lookup_type_and_attribution_model_are_enums(document) -> None:
    def parameter(path: str, name: str) -> dict:
        return next(p for p in document["paths"][path]["get"]["parameters"]
                    if p["name"] == name)["schema"]

    assert set(parameter("/v1/profiles:lookup", "type")["enum"]) == {
        "email", "phone", "user_id", "anonymous_id", "device_id", "loyalty_id", "crm_id"}
    assert set(parameter("/v1/reports/attribution", "model")["enum"]) == {
        "first_touch", "last_touch", "linear", "time_decay", "position_based", "markov",
        "shapley", "shapley_simplified"}


def test_a_rejected_result_always_carries_message_id_which_may_be_null(client,
                                                                     document) -> None:
    result_schema = document["components"]["schemas"]["EventResult"]
    assert "message_id" in result_schema["required"]
    assert {"type": "null"} in result_schema["properties"]["message_id"]["anyOf"]
    batch = [ev("ok-1"), {"type": "track"}, {"message_id": 7, "type": "track"}, "text"]
    response = client.post("/v1/events", json={"events": batch}, headers=auth(WRITER))
    assert_conforms(document, "POST", "/v1/events", response)
    results = response.json()["results"]
    assert [r["status"] for r in results] == ["accepted", "rejected", "rejected", "rejected"]
    assert all("message_id" in r for r in results)
    assert [r["message_id"] for r in results[1:]] == [None, None, None]


@pytest.mark.parametrize("method, path, allowed", [
    ("POST", "/healthz", "GET"),
    ("POST", "/v1/profiles/c-1", "GET, DELETE"),
    ("GET", "/v1/events", "POST"),
    ("PUT", "/v1/reports/attribution", "GET"),
])
def test_a_method_a_path_lacks_is_405_problem_with_allow(client, method: str, path: str,
                                                         allowed: str) -> None:
    response = client.request(method, path, headers=auth(WRITER))
    assert response.status_code == 405
    assert response.headers["content-type"] == PROBLEM
    assert response.headers["allow"] == allowed
    assert response.json()["code"] == "METHOD_NOT_ALLOWED"


def test_error_answers_conform_to_the_document(client, document) -> None:
    answers = [
        ("POST", "/v1/events", client.post("/v1/events", json={"events": [ev("m")]})),
        ("POST", "/v1/events", client.post("/v1/events", json={"events": [ev("m")]},
                                           headers=auth(READER))),
        ("POST", "/v1/events", client.post("/v1/events", content=b"{", headers=auth(WRITER))),
        ("POST", "/v1/events", client.post("/v1/events", json={"events": [ev("m")] * 501},
                                           headers=auth(WRITER))),
        ("POST", "/v1/events", client.post("/v1/events", json={"event": []},
                                           headers=auth(WRITER))),
        ("GET", "/v1/profiles/{customer_id}", client.get("/v1/profiles/c-unknown",
                                                         headers=auth(READER))),
        ("GET", "/v1/profiles:lookup", client.get("/v1/profiles:lookup",
                                                  params={"type": "fax", "value": "1"},
                                                  headers=auth(READER))),
    ]
    answers += [("GET", "/v1/profiles/{customer_id}",
                 client.get("/v1/profiles/c-1", headers=auth(SLOW))) for _ in range(3)]
    statuses = [response.status_code for _, _, response in answers]
    assert statuses == [401, 403, 400, 413, 422, 404, 422, 404, 404, 429]
    for method, path, response in answers:
        assert_conforms(document, method, path, response)


def test_a_service_down_is_documented_503_on_v1_and_readyz(client, services,
                                                           document) -> None:
    services.attribution.stop(grace=0)
    report = client.get("/v1/reports/attribution", headers=auth(WRITER))
    assert report.status_code == 503
    assert_conforms(document, "GET", "/v1/reports/attribution", report)
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert_conforms(document, "GET", "/readyz", ready)
    assert ready.json()["code"] == "NOT_READY"
    assert ready.json()["services"]["attribution"] != "SERVING"
    assert_conforms(document, "GET", "/healthz", client.get("/healthz"))
