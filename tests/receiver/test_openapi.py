"""The OpenAPI document is generated from the routes: every route in it, nothing else."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from starlette.routing import Route

from stripe_webhook_receiver import app as app_module
from stripe_webhook_receiver.app import create_app, routes
from stripe_webhook_receiver.settings import Settings


async def test_every_route_and_method_is_documented_and_nothing_else(tmp_path: Path) -> None:
    settings = Settings(secrets_dir=tmp_path, database_url=f"sqlite:///{tmp_path}/o.db")
    # The document needs no running state, so the app is called without its lifespan.
    transport = httpx.ASGITransport(app=create_app(settings))
    async with httpx.AsyncClient(transport=transport, base_url="http://receiver") as client:
        document = (await client.get("/openapi.json")).json()
    expected = {
        (re.sub(r":\w+}", "}", route.path), method.lower())
        for route in routes
        if isinstance(route, Route)
        for method in route.methods or ()
        if method != "HEAD"
    }
    documented = {
        (path, method) for path, methods in document["paths"].items() for method in methods
    }
    assert documented == expected
    assert document["openapi"].startswith("3.")
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            assert operation.get("summary"), f"{method} {path} has no summary"
            assert operation.get("responses"), f"{method} {path} documents no responses"


async def test_the_document_is_generated_once_per_app(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Generating it costs ~30 ms of CPU: a client asking in a loop must not cost that each time.
    calls = []
    generate = app_module.schemas.get_schema
    monkeypatch.setattr(
        app_module.schemas, "get_schema", lambda **kw: calls.append(1) or generate(**kw)
    )
    settings = Settings(secrets_dir=tmp_path, database_url=f"sqlite:///{tmp_path}/o.db")
    transport = httpx.ASGITransport(app=create_app(settings))
    async with httpx.AsyncClient(transport=transport, base_url="http://receiver") as client:
        answers = [await client.get("/openapi.json") for _ in range(3)]
    assert len(calls) == 1
    assert len({answer.content for answer in answers}) == 1
    assert answers[0].headers["content-type"] == "application/json"
