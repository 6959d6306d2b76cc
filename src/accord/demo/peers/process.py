"""Running a peer as a process of its own, for tests and the demo: started, stopped,
killed and started again on the same store."""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import IO

from accord.demo.peers.app import RESOURCES, Kind


class PeerStartError(RuntimeError):
    """The peer process died while starting, or did not answer /health in time."""


class PeerProcess:
    """One peer in a subprocess (`python -m accord.demo.peers`).

    `start()` picks a free port unless one was given (and keeps it, so a restart answers
    at the same `url`), then waits until `/health` answers. The token goes to the child
    as `PEER_TOKEN`, so it is not on its command line; `token=None` means no
    authentication, whatever this process's environment holds."""

    def __init__(
        self,
        kind: Kind,
        db_path: Path | str,
        *,
        port: int | None = None,
        token: str | None = None,
        host: str = "127.0.0.1",
        rate_limit: float | None = None,
        allow_reset: bool = False,
        startup_timeout: float = 30.0,
    ) -> None:
        if kind not in RESOURCES:
            raise ValueError(f"a peer's kind is one of {sorted(RESOURCES)}, not {kind!r}")
        self.kind = kind
        self.db_path = Path(db_path)
        self.port = port
        self.token = token
        self.host = host
        self.rate_limit = rate_limit
        self.allow_reset = allow_reset
        self.startup_timeout = startup_timeout
        self._chosen_port = port is not None
        self._process: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None

    @property
    def resource(self) -> str:
        """The collection's name: `accounts` (billing) or `requesters` (service desk)."""
        return RESOURCES[self.kind]

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("the peer has no port until it is started")
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> PeerProcess:
        """Start the peer and wait until it answers; raises PeerStartError with the
        process's stderr if it exits first or does not answer within the timeout."""
        if self.running:
            raise RuntimeError(f"the peer is already running at {self.url}")
        for attempt in range(3):
            if self.port is None or (attempt and not self._chosen_port):
                self.port = _free_port(self.host)
            try:
                self._launch()
            except PeerStartError as exc:
                # another process may have taken the port we picked between our probe
                # and the peer's bind; a port given to us is not ours to change
                if self._chosen_port or "address already in use" not in str(exc).lower():
                    raise
            else:
                return self
        raise PeerStartError(f"no free port found for the {self.kind} peer in 3 attempts")

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL if it has not exited after `timeout` seconds."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._close()

    def kill(self) -> None:
        """SIGKILL at once, as a crash would: nothing is shut down cleanly."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            process.kill()
        process.wait()
        self._close()

    def restart(self) -> PeerProcess:
        """Stop (cleanly) and start again on the same store and port."""
        self.stop()
        return self.start()

    def stderr(self) -> str:
        """What the running (or last) process wrote to stderr so far."""
        if self._stderr is None:
            return ""
        self._stderr.flush()
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")

    def __enter__(self) -> PeerProcess:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _command(self) -> list[str]:
        command = [
            sys.executable, "-m", "accord.demo.peers",
            "--kind", self.kind,
            "--db", str(self.db_path),
            "--host", self.host,
            "--port", str(self.port),
        ]  # fmt: skip
        if self.rate_limit is not None:
            command += ["--rate-limit", str(self.rate_limit)]
        if self.allow_reset:
            command.append("--allow-reset")
        return command

    def _launch(self) -> None:
        environment = dict(os.environ)
        environment.pop("PEER_TOKEN", None)
        if self.token is not None:
            environment["PEER_TOKEN"] = self.token
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115  (kept until the peer stops)
        self._process = subprocess.Popen(  # noqa: S603  (our own module, no shell)
            self._command(),
            stdin=subprocess.DEVNULL,
            stdout=self._stderr,
            stderr=self._stderr,
            env=environment,
        )
        deadline = time.monotonic() + self.startup_timeout
        while not self._healthy():
            if self._process.poll() is not None:
                code = self._process.returncode
                output = self.stderr()
                self._close()
                raise PeerStartError(
                    f"the {self.kind} peer exited with code {code} while starting:\n{output}"
                )
            if time.monotonic() > deadline:
                output = self.stderr()
                self.kill()
                raise PeerStartError(
                    f"the {self.kind} peer did not answer {self.url}/health within "
                    f"{self.startup_timeout:g} s:\n{output}"
                )
            time.sleep(0.05)

    def _healthy(self) -> bool:
        connection = http.client.HTTPConnection(self.host, self.port, timeout=2)
        try:
            connection.request("GET", "/health")
            return connection.getresponse().status == 200
        except OSError:
            return False
        finally:
            connection.close()

    def _close(self) -> None:
        self._process = None
        if self._stderr is not None:
            with contextlib.suppress(OSError):
                self._stderr.close()
            self._stderr = None


def _free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])
