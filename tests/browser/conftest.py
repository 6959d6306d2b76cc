"""The web app in a real browser: Playwright driving Debian's Chromium (/usr/bin/chromium,
installed by `make test`) against a real server on a real store.

One demo company (1,000 customers: four systems, their linked records, a resolve with
the learned engine, users of each role) is built once per run; each test gets its own
copy of it, served by uvicorn on a free port, so a merge in one test is never seen by
another. Each test saves a screenshot of the page it checked (`shot`), into
ACCORD_SCREENSHOTS or build/screenshots."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import pyotp
import pytest
import uvicorn
from playwright.sync_api import Browser, Page, Playwright, sync_playwright

from accord.demo.generator import generate
from accord.demo.run import inputs, linked_inputs, write_project
from accord.golden.resolve import resolve
from accord.govern import identity
from accord.govern.permissions import Role
from accord.intake.load import load_file
from accord.linked.intake import load_linked_file
from accord.store.engine import writing
from accord.web.app import create_app
from accord.workspace import Workspace, open_workspace
from tests.accounts import enrol
from tests.services import require

CHROMIUM = Path(os.environ.get("ACCORD_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
REPOSITORY = Path(__file__).parent.parent.parent
SCREENSHOTS = Path(os.environ.get("ACCORD_SCREENSHOTS", REPOSITORY / "build" / "screenshots"))
PASSWORD = "a long enough password"
CUSTOMERS = 1000
# one user of each role a person can hold, named after it
USERS = {str(role): role for role in (Role.ADMIN, Role.STEWARD, Role.OPERATOR, Role.VIEWER)}
# the second factors of the users whose role requires one (the demo requires it of admins
# and stewards), set up when the demo company is built
TOTP_SECRETS: dict[str, str] = {}
ENROLLED_STEPS: dict[str, int] = {}  # the time step each secret's set-up took
_used_steps: dict[tuple[str, str], int] = {}  # (server, secret): the last step used


@pytest.fixture(scope="session")
def demo_company(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo project with its data loaded and resolved; copied for each test."""
    root = tmp_path_factory.mktemp("browser") / "demo"
    write_project(root)
    generate(root / "data", customers=CUSTOMERS)
    workspace = open_workspace(root)
    for system, path in inputs(root / "data"):
        load_file(workspace.engine, workspace.project, system, path, actor="test")
    resolve(workspace.engine, workspace.project, actor="test")
    for system, kind, path in linked_inputs(root / "data"):
        mapping = workspace.project.linked_mapping(system, kind)
        load_linked_file(workspace.engine, workspace.project, mapping, path, actor="test")
    with writing(workspace.engine) as conn:
        for name, role in USERS.items():
            identity.create_user(conn, name, PASSWORD, role, created_by="test")
    for name, role in USERS.items():
        if role in workspace.project.config.security.mfa_roles:
            TOTP_SECRETS[name] = _enrol(workspace, name)
    workspace.engine.dispose()
    return root


def _enrol(workspace: Workspace, username: str) -> str:
    """Set up a second factor for a user whose role requires one (the demo's admin and
    steward), as they would on /account; returns its secret."""
    at = datetime.now(UTC)
    secret, _ = enrol(workspace.engine, username, PASSWORD, at=at)
    ENROLLED_STEPS[secret] = pyotp.TOTP(secret).timecode(at)
    return secret


@dataclass
class Site:
    url: str
    workspace: Workspace


@pytest.fixture
def site(demo_company: Path, tmp_path: Path) -> Iterator[Site]:
    """A copy of the demo company served on a free port for this test alone."""
    root = tmp_path / "demo"
    shutil.copytree(demo_company, root, ignore=shutil.ignore_patterns("data"))
    _used_steps.clear()  # a fresh copy: no code used since the set-ups
    workspace = open_workspace(root)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(
        create_app(workspace), host="127.0.0.1", port=port, log_level="warning", lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            pytest.fail(f"the test server did not start on port {port}")
        time.sleep(0.02)
    yield Site(f"http://127.0.0.1:{port}", workspace)
    server.should_exit = True
    thread.join(timeout=10)
    workspace.engine.dispose()


# Package scope, not session: Playwright's sync API keeps an event loop running on the
# main thread while it is started, and the tests after these call asyncio.run.
@pytest.fixture(scope="package")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="package")
def browser(playwright: Playwright) -> Iterator[Browser]:
    def probe() -> None:
        if not CHROMIUM.exists():
            raise FileNotFoundError(f"{CHROMIUM}: install it with `apt-get install chromium`")

    require("Chromium", str(CHROMIUM), probe)
    launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    yield launched
    launched.close()


@pytest.fixture
def page(browser: Browser, site: Site) -> Iterator[Page]:
    context = browser.new_context(base_url=site.url, viewport={"width": 1280, "height": 860})
    context.set_default_timeout(10_000)
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    opened.on(
        "console",
        lambda message: errors.append(message.text) if message.type == "error" else None,
    )
    yield opened
    context.close()
    # a page that broke its own script, or that the Content-Security-Policy refused, fails
    assert not errors, f"the browser reported errors: {errors}"


def shot(page: Page, name: str) -> Path:
    """Save a screenshot of the page as checked: build/screenshots/<name>.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def sign_in(page: Page, username: str, *, totp_secret: str | None = None) -> None:
    """Sign in through the form as `username` (one of USERS), answering the MFA step
    with a code from `totp_secret`, or from the user's own second factor when their
    role requires one (TOTP_SECRETS)."""
    secret = totp_secret or TOTP_SECRETS.get(username)
    page.goto("/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    if secret is not None:
        page.get_by_label("Code").fill(totp_code(page, secret))
        page.get_by_role("button", name="Verify").click()
    page.wait_for_load_state()


def totp_code(page: Page, secret: str) -> str:
    """A code for `secret` that the server of `page` has not taken yet. Each code is
    taken once, so a second sign-in within one 30-second step uses the next step's code
    (the server takes one step of drift), or waits for it."""
    totp = pyotp.TOTP(secret)
    server = urlsplit(page.url).netloc
    now = totp.timecode(datetime.now(UTC))
    step = max(now, _used_steps.get((server, secret), ENROLLED_STEPS.get(secret, -1)) + 1)
    if step > now + 1:
        time.sleep(max(0.0, (step - 1) * totp.interval - time.time()))
    _used_steps[(server, secret)] = step
    return totp.generate_otp(step)
