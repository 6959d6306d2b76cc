"""`accord serve --processes N`: several processes answer the API, on one store."""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import func, select

from accord.govern import identity
from accord.store.engine import make_engine, writing
from accord.store.migrate import upgrade
from accord.store.tables import record_head
from tests.factories import crm_row

PROCESSES = ("--processes", "2", "--workers", "0")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _request(
    port: int, method: str, path: str, body: bytes = b"", **headers: str
) -> tuple[int, dict]:  # type: ignore[type-arg]
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        connection.close()


def test_two_processes_serve_pushes_into_one_store(demo_project_dir: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'served.sqlite3'}"
    engine = make_engine(url)
    upgrade(engine)
    with writing(engine) as conn:
        key = identity.create_api_key(conn, "crm", created_by="test")
    port = _free_port()
    accord = Path(sys.executable).parent / "accord"
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [str(accord), "serve", str(demo_project_dir), "--port", str(port), *PROCESSES],
            env=os.environ | {"ACCORD_DATABASE_URL": url},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                status, health = _request(port, "GET", "/health")
                if status == 200:
                    break
            except OSError:
                pass
            assert server.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        assert health == {"status": "ok", "database": "ok"}

        answers = []
        for batch in range(6):  # spread over both processes by the kernel
            records = [crm_row(f"C{batch}-{i}") for i in range(50)]
            status, answer = _request(
                port,
                "POST",
                "/api/v1/systems/crm/records",
                json.dumps({"records": records}).encode(),
                **{
                    "X-API-Key": key,
                    "Idempotency-Key": f"b{batch}",
                    "Content-Type": "application/json",
                },
            )
            assert status == 200, answer
            answers.append(answer)
        status, replay = _request(
            port,
            "POST",
            "/api/v1/systems/crm/records",
            json.dumps({"records": [crm_row(f"C0-{i}") for i in range(50)]}).encode(),
            **{"X-API-Key": key, "Idempotency-Key": "b0", "Content-Type": "application/json"},
        )
        assert status == 200
        assert replay["replayed"] is True
        assert replay["load_id"] == answers[0]["load_id"]
        status, _ = _request(port, "GET", "/api/v1/systems/crm/records/C0-0")
        assert status == 401  # no way in without authentication, in any process
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert sum(a["counts"]["accepted"] for a in answers) == 300
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(record_head)).scalar_one() == 300
    engine.dispose()
