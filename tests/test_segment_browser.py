"""Segment's JavaScript library sends to omnicdp from a retailer's page: ``@segment/analytics-next``
from npm, bundled here with esbuild (its settings inline, so no CDN), runs in Debian's
headless ``chromium`` on a page of another origin than the gateway's; it sends a page view
and an identify across origins (a CORS preflight, since it sends its write key as HTTP
Basic), and the customer and journey appear through the native API.

Needs node_modules (``make test`` installs them from package.json) and ``/usr/bin/chromium``
(``.ci/run`` installs Debian's package)."""

from __future__ import annotations

import functools
import json
import shutil
import subprocess
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
import yaml

from tests.gateway_kit import GatewayProcess, auth

ROOT = Path(__file__).resolve().parent.parent
BROWSER = ROOT / "tests" / "browser"
ESBUILD = ROOT / "node_modules" / ".bin" / "esbuild"
CHROMIUM = Path("/usr/bin/chromium")
WRITE_KEY, READ_KEY = "wk-storefront", "reader-secret"
PAGE_HOST = "127.0.0.2"  # the shop's origin; the gateway listens on 127.0.0.1


@pytest.fixture
def shop_page(tmp_path) -> Iterator[str]:
    """The retailer's page and the bundled library, served from their own origin."""
    assert ESBUILD.exists() and shutil.which("node"), "run `make test` (installs node_modules)"
    assert CHROMIUM.exists(), "install Debian's chromium (.ci/run does)"
    site = tmp_path / "site"
    site.mkdir()
    shutil.copy(BROWSER / "page.html", site / "index.html")
    subprocess.run([str(ESBUILD), str(BROWSER / "analytics_entry.js"), "--bundle",
                    "--format=iife", "--target=es2020", "--log-level=warning",
                    f"--outfile={site / 'analytics.js'}"], check=True, cwd=ROOT, timeout=120)
    handler = functools.partial(_QuietHandler, directory=str(site))
    server = ThreadingHTTPServer((PAGE_HOST, 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://{PAGE_HOST}:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format, *args) -> None:  # noqa: A002 (the base class's name)
        pass


@pytest.fixture
def gateway(services, tmp_path, shop_page) -> Iterator[GatewayProcess]:
    keys = tmp_path / "keys.yaml"
    keys.write_text(yaml.safe_dump({"keys": [
        {"name": "storefront", "key": WRITE_KEY, "scopes": ["events:write"]},
        {"name": "analyst", "key": READ_KEY, "scopes": ["profiles:read"]}]}))
    process = GatewayProcess(services, keys, "--cors-origins", shop_page)
    yield process
    process.stop()


def test_analytics_js_in_chromium_sends_a_page_view_and_an_identify(gateway, shop_page,
                                                                     tmp_path) -> None:
    config = {"writeKey": WRITE_KEY, "apiHost": f"127.0.0.1:{gateway.port}/v1",
              "userId": "u-browser-1", "email": "Anna.Browser@Example.ru"}
    url = f"{shop_page}/index.html#{urllib.parse.quote(json.dumps(config))}"
    run = subprocess.run(["node", str(BROWSER / "drive.mjs"), url, str(tmp_path / "profile"),
                          "2"], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert run.returncode == 0, run.stderr
    sent = json.loads(run.stdout)
    # analytics.js's own paths, each answered 200 (after the CORS preflight its Basic
    # Authorization header needs); the gateway stores before it answers.
    assert sent["posts"] == [["/v1/p", 200], ["/v1/i", 200]], run.stderr
    anonymous_id = sent["result"]["anonymousId"]
    assert anonymous_id

    def lookup(id_type: str, value: str) -> httpx.Response:
        return httpx.get(f"{gateway.url}/v1/profiles:lookup", headers=auth(READ_KEY),
                         params={"type": id_type, "value": value}, timeout=10)

    profile = lookup("user_id", "u-browser-1").json()
    customer = profile["customer_id"]
    assert lookup("anonymous_id", anonymous_id).json()["customer_id"] == customer
    assert lookup("email", "anna.browser@example.ru").json()["customer_id"] == customer
    assert profile["traits"]["first_name"] == "Анна"
    events = httpx.get(f"{gateway.url}/v1/profiles/{customer}/events", headers=auth(READ_KEY),
                       timeout=10).json()["events"]
    assert [(e["type"], e["event"], e["channel"], e["sent_by"]) for e in events] == [
        ("page", "Sofas", "web", "storefront"), ("identify", None, "web", "storefront")]
    page = events[0]
    assert page["identifiers"] == {"anonymous_id": anonymous_id}
    assert page["properties"]["list"] == "living room"
    assert page["properties"]["context"]["page"]["url"].startswith(f"{shop_page}/index.html")
    assert page["properties"]["context"]["page"]["title"] == "Sofas | Test shop"
    assert page["properties"]["context"]["library"]["name"] == "analytics.js"
    assert "Mozilla" not in json.dumps(events)  # context.userAgent: not stored
