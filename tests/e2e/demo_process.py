"""Run `manage.py demo` as a user would (embedded default, its own SQLite file) and log in to it."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
LOGIN_LINE = re.compile(r"Open (http://\S+)\s+and log in as\s+(\S+) / (\S+)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class DemoProcess:
    def __init__(self, tmp_path: Path, *, speed: float = 40.0):
        self.port, self.double_port = free_port(), free_port()
        env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
        env.update(DJANGO_DEBUG="1", SQLITE_PATH=str(tmp_path / "demo.sqlite3"), PYTHONUNBUFFERED="1")
        self.log_path = tmp_path / "demo.log"
        self._log = self.log_path.open("w")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "manage.py",
                "demo",
                "--port",
                str(self.port),
                "--double-port",
                str(self.double_port),
                "--speed",
                str(speed),
            ],
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.url = self.username = self.password = None

    def log(self) -> str:
        return self.log_path.read_text()

    def wait_for_login(self, timeout_s: float = 120.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"demo exited early with {self.process.returncode}:\n{self.log()}")
            match = LOGIN_LINE.search(self.log())
            if match:
                self.url, self.username, self.password = match.groups()
                break
            time.sleep(0.2)
        else:
            raise AssertionError(f"demo printed no login line in {timeout_s} s:\n{self.log()}")
        while time.monotonic() < deadline:  # daphne listening
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.2)
        raise AssertionError(f"daphne is not listening on {self.port}:\n{self.log()}")

    def logged_in_client(self) -> httpx.Client:
        client = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=10)
        client.get("/accounts/login/")
        answer = client.post(
            "/accounts/login/",
            data={
                "username": self.username,
                "password": self.password,
                "csrfmiddlewaretoken": client.cookies["csrftoken"],
            },
            headers={"Referer": f"http://127.0.0.1:{self.port}/accounts/login/"},
        )
        assert answer.status_code == 302, answer.text[:500]
        client.headers["X-CSRFToken"] = client.cookies["csrftoken"]
        return client

    def stop(self, timeout_s: float = 30.0) -> int:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self._log.close()
        return self.process.returncode
