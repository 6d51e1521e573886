"""What FastAPI cannot infer for the OpenAPI document: the bearer API key on every /v1
operation, and the event batch's schema (its body is parsed by hand, event by event, so that
one bad event never fails its batch)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from omnicdp.services.gateway import schemas

BATCH_SCHEMA_REF = "#/components/schemas/EventBatch"


def complete(app: FastAPI) -> None:
    """Wrap ``app.openapi`` so the document it serves is complete."""
    generate = app.openapi
    batch_schema = schemas.EventBatch.model_json_schema(
        ref_template="#/components/schemas/{model}")

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = generate()
            components = document.setdefault("components", {})
            component_schemas = components.setdefault("schemas", {})
            component_schemas.update(batch_schema.get("$defs", {}))
            component_schemas["EventBatch"] = {k: v for k, v in batch_schema.items()
                                               if k != "$defs"}
            components["securitySchemes"] = {"apiKey": {
                "type": "http", "scheme": "bearer",
                "description": "A partner API key; each key has scopes and a rate limit."}}
            for path, operations in document["paths"].items():
                if path.startswith("/v1/"):
                    for operation in operations.values():
                        operation["security"] = [{"apiKey": []}]
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
