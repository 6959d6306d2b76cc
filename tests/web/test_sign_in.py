"""Signing in with a second factor, throttling, session endings, the account page and
users and roles, through the HTTP layer (pages and the JSON API)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from accord.govern import identity, mfa
from accord.govern.audit import AuditAction
from accord.govern.permissions import Role
from accord.settings import Settings
from accord.store.engine import writing
from accord.store.tables import app_user, audit_log, user_session
from accord.store.types import utcnow
from accord.web.app import create_app
from accord.workspace import Workspace
from tests.accounts import enrol

PASSWORD = "a long enough password"
USERS = {"root": Role.ADMIN, "stewie": Role.STEWARD, "otto": Role.OPERATOR, "vera": Role.VIEWER}


@dataclass
class Site:
    workspace: Workspace

    def client(self) -> TestClient:
        """A browser of its own (cookies) on the app."""
        return TestClient(create_app(self.workspace), follow_redirects=False)

    def enrol(self, username: str) -> str:
        """Give `username` a second factor; returns its secret."""
        return enrol(self.workspace.engine, username, PASSWORD)[0]

    def actions(self) -> list[str]:
        with self.workspace.engine.connect() as conn:
            return list(conn.execute(select(audit_log.c.action)).scalars())


def _site(workspace: Workspace, *, mfa_required: str = "[]", **settings: Any) -> Site:
    config = workspace.root / "accord.yaml"
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace("mfa_required: []", f"mfa_required: {mfa_required}"))
    served = Workspace(workspace.root, workspace.engine, Settings(**settings))
    with writing(workspace.engine) as conn:
        for name, role in USERS.items():
            identity.create_user(conn, name, PASSWORD, role, created_by="test")
    return Site(served)


@pytest.fixture
def site(workspace: Workspace) -> Site:
    return _site(workspace)


@pytest.fixture
def strict(workspace: Workspace) -> Site:
    """The demo's own rule: admins and stewards sign in with a second factor."""
    return _site(workspace, mfa_required="[admin, steward]")


@pytest.fixture
def client(site: Site) -> Iterator[TestClient]:
    with site.client() as opened:
        yield opened


def _csrf(client: TestClient) -> str:
    if "accord_csrf" not in client.cookies:
        client.get("/login")
    return str(client.cookies["accord_csrf"])


def _post(client: TestClient, path: str, data: dict[str, str]) -> Any:
    return client.post(path, data=data | {"csrf_token": _csrf(client)})


def _password_step(client: TestClient, username: str, next_page: str = "/customers") -> Any:
    form = {"username": username, "password": PASSWORD, "next": next_page}
    return _post(client, "/login", form)


def _sign_in(client: TestClient, username: str) -> None:
    response = _password_step(client, username)
    assert response.status_code == 303 and response.headers["location"] == "/customers"


def _next_code(secret: str) -> str:
    # the step after the set-up's, still within a step of drift
    return mfa.code_at(secret, utcnow() + timedelta(seconds=30))


def _set_cookie(response: Any, name: str) -> str:
    found = [h for h in response.headers.get_list("set-cookie") if h.startswith(f"{name}=")]
    assert found, f"no {name} cookie set"
    return found[0]


def test_the_sign_in_page_asks_for_the_code_of_a_user_with_one(site: Site) -> None:
    secret = site.enrol("stewie")
    with site.client() as client:
        started = _password_step(client, "stewie", "/customers?q=ann")
        assert started.status_code == 303
        assert started.headers["location"] == "/login/code?next=/customers%3Fq%3Dann"
        pending = _set_cookie(started, "accord_pending")
        assert "HttpOnly" in pending and "SameSite=strict" in pending and "Path=/login" in pending
        assert "accord_session" not in client.cookies  # no session on the password alone
        assert client.get("/customers").status_code == 303
        page = client.get("/login/code", params={"next": "/customers?q=ann"})
        assert page.status_code == 200
        assert '<label for="code">Code</label>' in page.text and ">Verify</button>" in page.text
        wrong = _post(client, "/login/code", {"code": "000000", "next": "/customers?q=ann"})
        assert wrong.status_code == 401 and "wrong code" in wrong.text
        done = _post(
            client, "/login/code", {"code": _next_code(secret), "next": "/customers?q=ann"}
        )
        assert done.status_code == 303 and done.headers["location"] == "/customers?q=ann"
        assert "HttpOnly" in _set_cookie(done, "accord_session")
        assert client.get("/customers").status_code == 200
    assert AuditAction.USER_MFA_FAILED in site.actions()


def test_the_code_page_without_a_pending_sign_in_starts_again(client: TestClient) -> None:
    page = client.get("/login/code")
    assert page.status_code == 200 and "this sign-in has ended" in page.text
    posted = _post(client, "/login/code", {"code": "123456"})
    assert posted.status_code == 401 and "Username" in posted.text


def test_the_api_wants_the_code_with_the_password(site: Site) -> None:
    secret = site.enrol("stewie")
    with site.client() as client:
        credentials = {"username": "stewie", "password": PASSWORD}
        needed = client.post("/api/v1/session", json=credentials)
        assert needed.status_code == 401
        assert needed.json()["error"] == "CodeNeeded"
        assert "code" in needed.json()["message"] and "`code`" in needed.json()["hint"]
        assert "accord_session" not in client.cookies
        wrong = client.post("/api/v1/session", json=credentials | {"code": "000000"})
        assert wrong.status_code == 401 and wrong.json()["message"] == "wrong code"
        done = client.post("/api/v1/session", json=credentials | {"code": _next_code(secret)})
        assert done.status_code == 200 and done.json()["name"] == "stewie"
        assert client.get("/api/v1/session").json()["role"] == "steward"


def test_a_role_that_requires_a_second_factor_sets_one_up_first(strict: Site) -> None:
    with strict.client() as client:
        api = client.post("/api/v1/session", json={"username": "root", "password": PASSWORD})
        assert api.status_code == 401 and api.json()["error"] == "EnrolmentNeeded"
        started = _password_step(client, "root", "/users")
        assert started.headers["location"] == "/login/enrol?next=/users"
        assert client.get("/users").status_code == 303  # nothing else until set up
        page = client.get("/login/enrol", params={"next": "/users"})
        assert page.status_code == 200
        assert 'src="data:image/svg+xml' in page.text and "Your role signs in" in page.text
        found = re.search(r'<p class="secret mono"[^>]*>([A-Z2-7 ]+)</p>', page.text)
        assert found
        secret = found.group(1).replace(" ", "")
        wrong = _post(client, "/login/enrol", {"code": "000000", "next": "/users"})
        assert wrong.status_code == 401 and "not the code" in wrong.text
        done = _post(
            client, "/login/enrol", {"code": mfa.code_at(secret, utcnow()), "next": "/users"}
        )
        assert done.status_code == 200
        codes = re.findall(r"<li>([a-z2-9]{5}-[a-z2-9]{5})</li>", done.text)
        assert len(codes) == mfa.RECOVERY_CODES and 'href="/users"' in done.text
        assert client.get("/users").status_code == 200
    # a recovery code signs in in place of the app's code, once
    with strict.client() as client:
        credentials = {"username": "root", "password": PASSWORD, "code": codes[0]}
        assert client.post("/api/v1/session", json=credentials).status_code == 200
        assert client.post("/api/v1/session", json=credentials).status_code == 401
    # a role without the requirement signs in with the password alone
    with strict.client() as client:
        _sign_in(client, "vera")


def test_failed_attempts_are_throttled_per_username(workspace: Workspace) -> None:
    site = _site(workspace, sign_in_limit="3/minute", sign_in_client_limit="off")
    with site.client() as client:
        wrong = {"username": "vera", "password": "not the password"}
        for _ in range(3):
            assert client.post("/api/v1/session", json=wrong).status_code == 401
        failed = site.actions().count(AuditAction.USER_SIGN_IN_FAILED)
        right = {"username": "vera", "password": PASSWORD}
        refused = client.post("/api/v1/session", json=right)
        assert refused.status_code == 429
        assert refused.json()["error"] == "RateLimited"
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        # another username is not held back; the page says what happened
        assert client.post("/api/v1/session", json=right | {"username": "otto"}).status_code == 200
        page = _password_step(client, "vera")
        assert page.status_code == 429 and "Too many failed attempts" in page.text
        assert "Retry-After" in page.headers
    # a throttled attempt never reaches the password check, so it is not audited
    assert site.actions().count(AuditAction.USER_SIGN_IN_FAILED) == failed


def test_failed_attempts_are_throttled_per_client(workspace: Workspace) -> None:
    site = _site(workspace, sign_in_limit="off", sign_in_client_limit="2/minute")
    with site.client() as client:
        for name in ("nobody", "vera"):
            wrong = {"username": name, "password": "not the password"}
            assert client.post("/api/v1/session", json=wrong).status_code == 401
        right = {"username": "otto", "password": PASSWORD}
        assert client.post("/api/v1/session", json=right).status_code == 429


def test_wrong_codes_are_throttled_too(workspace: Workspace) -> None:
    site = _site(workspace, sign_in_limit="2/minute")
    secret = site.enrol("stewie")
    with site.client() as client:
        _password_step(client, "stewie")
        for _ in range(2):
            assert _post(client, "/login/code", {"code": "000000"}).status_code == 401
        page = _post(client, "/login/code", {"code": _next_code(secret)})
        assert page.status_code == 429 and "Too many failed attempts" in page.text
        assert "accord_session" not in client.cookies


def test_a_session_that_ended_lands_on_sign_in_saying_so(site: Site) -> None:
    with site.client() as client:
        _sign_in(client, "vera")
        with writing(site.workspace.engine) as conn:
            idle = utcnow() - identity.SESSION_IDLE - timedelta(minutes=1)
            conn.execute(update(user_session).values(last_seen_at=idle))
        page = client.get("/customers", params={"q": "ann", "page": "2"})
        assert page.status_code == 303
        target = "/login?next=/customers%3Fq%3Dann%26page%3D2&ended=1"
        assert page.headers["location"] == target
        assert 'accord_session=""' in _set_cookie(page, "accord_session")  # dropped
        login = client.get(target)
        assert "Your session ended" in login.text
        assert 'name="next" value="/customers?q=ann&amp;page=2"' in login.text
        # without a session cookie at all, it is a plain sign-in
        fresh = client.get("/customers")
        assert fresh.headers["location"] == "/login?next=/customers"


def test_session_cookies_are_secure_when_set_so(workspace: Workspace) -> None:
    site = _site(workspace, secure_cookies=True)
    with site.client() as client:
        cookie = _set_cookie(_password_step(client, "vera"), "accord_session")
        assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie


def test_setting_up_and_turning_off_on_the_account_page(site: Site) -> None:
    with site.client() as client:
        _sign_in(client, "otto")
        page = client.get("/account")
        assert page.status_code == 200 and "Off" in page.text
        started = _post(client, "/account/mfa", {})
        assert started.status_code == 200 and 'src="data:image/svg+xml' in started.text
        token = re.search(r'name="token" value="([^"]+)"', started.text)
        secret = re.search(r'<p class="secret mono"[^>]*>([A-Z2-7 ]+)</p>', started.text)
        assert token and secret
        form = {"token": token.group(1)}
        wrong = _post(client, "/account/mfa/confirm", form | {"code": "000000"})
        assert wrong.status_code == 422 and "not the code" in wrong.text
        code = mfa.code_at(secret.group(1).replace(" ", ""), utcnow())
        done = _post(client, "/account/mfa/confirm", form | {"code": code})
        assert done.status_code == 200 and "not shown" in done.text
        again = _post(client, "/account/mfa/confirm", form | {"code": code})
        assert again.status_code == 409 and "start again" in again.text
        assert "On" in client.get("/account").text
        refused = _post(client, "/account/mfa/off", {"code": "000000"})
        assert refused.status_code == 422 and "wrong code" in refused.text
        secret_text = secret.group(1).replace(" ", "")
        off = _post(client, "/account/mfa/off", {"code": _next_code(secret_text)})
        assert off.status_code == 303 and off.headers["location"] == "/account?done=off"
        assert "Two-step sign-in is off." in client.get(off.headers["location"]).text
    assert AuditAction.USER_MFA_DISABLED in site.actions()


def test_a_role_that_requires_it_cannot_turn_it_off(strict: Site) -> None:
    secret = strict.enrol("otto")  # operators may have one without being required to
    with writing(strict.workspace.engine) as conn:
        conn.execute(update(app_user).where(app_user.c.username == "otto").values(role="steward"))
    with strict.client() as client:
        credentials = {"username": "otto", "password": PASSWORD, "code": _next_code(secret)}
        assert client.post("/api/v1/session", json=credentials).status_code == 200
        page = client.get("/account")
        assert "stays on" in page.text and "/account/mfa/off" not in page.text
        refused = _post(client, "/account/mfa/off", {"code": "123456"})
        assert refused.status_code == 403 and "cannot be turned off" in refused.text


NEW_FORMS: list[tuple[str, dict[str, str]]] = [
    ("/login/code", {"code": "123456"}),
    ("/login/enrol", {"code": "123456"}),
    ("/account/mfa", {}),
    ("/account/mfa/confirm", {"token": "x", "code": "123456"}),
    ("/account/mfa/off", {"code": "123456"}),
    ("/users", {"username": "mallory", "password": PASSWORD, "role": "admin"}),
    ("/users/role", {"username": "vera", "role": "admin"}),
    ("/users/active", {"username": "vera", "active": "false"}),
    ("/users/mfa-reset", {"username": "vera"}),
]


@pytest.mark.parametrize(("path", "form"), NEW_FORMS, ids=[path for path, _ in NEW_FORMS])
def test_every_form_needs_its_csrf_token(site: Site, path: str, form: dict[str, str]) -> None:
    with site.client() as client:
        _sign_in(client, "root")
        for token in (None, "forged"):
            data = form if token is None else form | {"csrf_token": token}
            refused = client.post(path, data=data)
            assert refused.status_code == 403, (path, token)
            assert "did not come from this site" in refused.text
    with site.workspace.engine.connect() as conn:
        rows = conn.execute(select(app_user.c.username, app_user.c.role, app_user.c.active))
        assert {row.username: (row.role, row.active) for row in rows} == {
            name: (str(role), True) for name, role in USERS.items()
        }


@pytest.mark.parametrize("username", ["stewie", "otto", "vera"])
def test_only_administrators_reach_users_and_roles(site: Site, username: str) -> None:
    with site.client() as client:
        _sign_in(client, username)
        assert "/users" not in client.get("/account").text  # not in the navigation
        page = client.get("/users")
        assert page.status_code == 403 and "users:manage" in page.text
        for path, form in NEW_FORMS[5:]:
            assert _post(client, path, form).status_code == 403, path
    with site.workspace.engine.connect() as conn:
        assert (
            conn.execute(select(app_user.c.role).where(app_user.c.username == "vera")).scalar()
            == "viewer"
        )


def test_an_admin_manages_users_and_roles(site: Site) -> None:
    with site.client() as admin, site.client() as vera:
        _sign_in(admin, "root")
        _sign_in(vera, "vera")
        page = admin.get("/users")
        assert page.status_code == 200
        for name in USERS:
            assert f'<th scope="row">{name}' in page.text
        short = _post(admin, "/users", {"username": "nia", "password": "short", "role": "viewer"})
        assert short.status_code == 422 and "at least 12 characters" in short.text
        assert 'value="nia"' in short.text  # the form keeps what was typed
        taken = _post(admin, "/users", {"username": "vera", "password": PASSWORD, "role": "viewer"})
        assert taken.status_code == 409 and "exists already" in taken.text
        bad_role = _post(
            admin, "/users", {"username": "nia", "password": PASSWORD, "role": "system"}
        )
        assert bad_role.status_code == 422
        made = _post(admin, "/users", {"username": "nia", "password": PASSWORD, "role": "operator"})
        assert made.headers["location"] == "/users?done=created&user=nia"
        assert "Created nia." in admin.get(made.headers["location"]).text

        # a role change counts from the user's next request
        assert vera.get("/api/v1/reviews").status_code == 403
        changed = _post(admin, "/users/role", {"username": "vera", "role": "steward"})
        assert changed.status_code == 303
        assert vera.get("/api/v1/reviews").status_code == 200
        _post(admin, "/users/role", {"username": "vera", "role": "viewer"})
        assert vera.get("/api/v1/reviews").status_code == 403

        # deactivating ends the user's sessions at once
        assert (
            _post(admin, "/users/active", {"username": "vera", "active": "false"}).status_code
            == 303
        )
        assert vera.get("/customers").headers["location"].endswith("&ended=1")
        assert "deactivated" in admin.get("/users").text
        _post(admin, "/users/active", {"username": "vera", "active": "true"})
        _sign_in(vera, "vera")

        # the last active admin stays one
        last = _post(admin, "/users/role", {"username": "root", "role": "viewer"})
        assert last.status_code == 409 and "last active administrator" in last.text
        gone = _post(admin, "/users/active", {"username": "root", "active": "false"})
        assert gone.status_code == 409
        missing = _post(admin, "/users/role", {"username": "nobody", "role": "viewer"})
        assert missing.status_code == 404 and "no user named" in missing.text
    actions = site.actions()
    assert AuditAction.USER_ROLE_CHANGED in actions and AuditAction.USER_DEACTIVATED in actions


def test_an_admin_resets_a_lost_second_factor(site: Site) -> None:
    site.enrol("stewie")
    with site.client() as admin:
        _sign_in(admin, "root")
        assert "Reset two-step" in admin.get("/users").text
        reset = _post(admin, "/users/mfa-reset", {"username": "stewie"})
        assert reset.headers["location"] == "/users?done=mfa_reset&user=stewie"
        again = _post(admin, "/users/mfa-reset", {"username": "stewie"})
        assert again.status_code == 409 and "no second factor" in again.text
    with site.client() as stewie:
        _sign_in(stewie, "stewie")  # the password alone again
    assert AuditAction.USER_MFA_RESET in site.actions()


def test_user_supplied_names_are_escaped(site: Site) -> None:
    with site.client() as admin:
        _sign_in(admin, "root")
        evil = "<script>alert(1)</script>"
        made = _post(admin, "/users", {"username": evil, "password": PASSWORD, "role": "viewer"})
        page = admin.get(made.headers["location"])
        assert evil not in page.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
