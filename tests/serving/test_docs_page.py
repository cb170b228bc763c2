"""``/docs`` works without the internet: the page and everything it loads come from the server.

The HTML checks run everywhere. The browser check loads the page in headless Chromium with
every host name but 127.0.0.1 unresolvable, and reads Chromium's network log: Swagger UI must
render the operations, and the page must not request anything from another origin.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpx
import pytest

from mlplug.testing.servers import RunningServer

pytestmark = pytest.mark.slow

CONTENT_TYPES = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}
#: The flags this machine's notes give for headless Chromium, plus: no QUIC, and no name
#: resolution for anything but loopback (the network is "off" for the page).
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
)


class _References(HTMLParser):
    """Every URL an HTML page refers to: src and href attributes, and URLs in inline scripts."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [value for name, value in attrs if name in ("src", "href") and value]
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.urls += re.findall(r"""(?:https?:)?//[^\s'"`)]+""", data)
            self.urls += re.findall(r"""url:\s*['"]([^'"]+)['"]""", data)


def _references(html: str) -> list[str]:
    parser = _References()
    parser.feed(html)
    return parser.urls


def test_docs_page_refers_only_to_its_own_server(server: RunningServer) -> None:
    page = httpx.get(server.url + "/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    urls = _references(page.text)
    assert any(u.endswith(".js") for u in urls) and any(u.endswith(".css") for u in urls), urls
    external = [u for u in urls if urlsplit(u).netloc]
    assert not external, f"/docs refers to other hosts: {external}"
    for url in urls:
        answer = httpx.get(urljoin(server.url + "/docs", url))
        assert answer.status_code == 200, url
        suffix = Path(urlsplit(url).path).suffix
        if suffix in CONTENT_TYPES:
            assert answer.headers["content-type"].startswith(CONTENT_TYPES[suffix]), (url, answer.headers)
    spec = httpx.get(server.url + "/openapi.json").json()
    assert not any(p.startswith("/docs") for p in spec["paths"])  # the page is not an API operation


def test_redoc_is_not_offered(server: RunningServer) -> None:
    # ReDoc's bundle fetches its vendor's logo from a CDN: not offered rather than half offline.
    assert httpx.get(server.url + "/redoc").status_code == 404


def test_docs_page_renders_in_chromium_with_the_network_off(server: RunningServer, tmp_path: Path) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("Chromium is not installed (`apt-get install -y chromium`); the HTML checks still ran")
    netlog = tmp_path / "netlog.json"
    done = subprocess.run(
        [
            browser,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--log-net-log={netlog}",
            "--virtual-time-budget=15000",
            "--dump-dom",
            server.url + "/docs",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    dom = done.stdout
    # Swagger UI ran (its script loaded) and rendered the spec it fetched from the server.
    assert 'data-path="/predict"' in dom and 'data-path="/explain"' in dom, dom[:2000]
    origin = server.url.rstrip("/")
    requested = _page_requests(netlog, origin)
    assert any(u.endswith("/openapi.json") for u in requested), requested
    foreign = [u for u in requested if not u.startswith(origin + "/")]
    assert not foreign, f"/docs requested other origins: {foreign}"


def _page_requests(netlog: Path, origin: str) -> list[str]:
    """URLs the page requested: requests whose initiator is the page's origin (Chromium's own
    background requests have none)."""
    log = json.loads(netlog.read_text())
    start = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    return [
        e["params"]["url"]
        for e in log["events"]
        if e["type"] == start and e.get("params", {}).get("initiator") == origin
    ]
