"""Run `manage.py demo` (or another long-running command) as a user would and stop it by a signal.

Each command runs on the embedded default with its own SQLite file, in a session of its own, and
as a background job: with SIGINT ignored, the disposition `nohup cmd &` in a script, many CI
runners and job schedulers hand a process. A command that stops on a signal then stops whoever
started it.
"""

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
# exec keeps an ignored disposition, so the command starts with SIGINT ignored, as a background job.
AS_BACKGROUND_JOB = [
    sys.executable,
    "-c",
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); os.execv(sys.argv[1], sys.argv[1:])",
    sys.executable,
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def embedded_env(sqlite_path: Path) -> dict[str, str]:
    """This environment on the embedded default (SQLite at `sqlite_path`, in-memory layer)."""
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    env.update(DJANGO_DEBUG="1", SQLITE_PATH=str(sqlite_path), PYTHONUNBUFFERED="1")
    return env


class CommandProcess:
    """`manage.py <args>` started as a background job, its output in `<tmp_path>/<name>.log`."""

    def __init__(self, tmp_path: Path, args: list[str], *, sqlite_path: Path | None = None) -> None:
        self.log_path = tmp_path / f"{args[0]}.log"
        self._log = self.log_path.open("w")
        self.process = subprocess.Popen(
            [*AS_BACKGROUND_JOB, "manage.py", *args],
            cwd=ROOT,
            env=embedded_env(sqlite_path or tmp_path / f"{args[0]}.sqlite3"),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        # Every line waited for is printed once the command has its SIGINT/SIGTERM handlers; until
        # then SIGINT is still ignored (inherited), so a stop before that kills the session instead.
        self.handles_signals = False

    def log(self) -> str:
        return self.log_path.read_text()

    def wait_for_line(self, pattern: re.Pattern[str], timeout_s: float = 120.0) -> re.Match[str]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"exited early with {self.process.returncode}:\n{self.log()}")
            match = pattern.search(self.log())
            if match:
                self.handles_signals = True
                return match
            time.sleep(0.2)
        raise AssertionError(f"no line matching {pattern.pattern!r} in {timeout_s} s:\n{self.log()}")

    def wait_for_port(self, port: int, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not listening(port):
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise AssertionError(f"nothing listening on {port}:\n{self.log()}")
            time.sleep(0.2)

    def stop(self, signum: int = signal.SIGINT, timeout_s: float = 30.0) -> int:
        """Send `signum` to the command (not its group: it must stop what it started itself) and
        wait up to `timeout_s`; past that, kill the whole session and fail."""
        if self.process.poll() is None and not self.handles_signals:  # a test interrupted early
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        if self.process.poll() is None:
            self.process.send_signal(signum)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
                self._log.close()
                raise AssertionError(
                    f"still running {timeout_s} s after {signal.Signals(signum).name}:\n{self.log()[-3000:]}"
                ) from None
        self._log.close()
        return self.process.returncode

    def session_is_empty(self) -> bool:
        """No process left in the command's session (no child outliving it)."""
        try:
            os.killpg(self.process.pid, 0)
        except ProcessLookupError:
            return True
        return False


class DemoProcess(CommandProcess):
    """`manage.py demo` on free ports, logged in to as its printed login line says."""

    def __init__(self, tmp_path: Path, *, speed: float = 40.0) -> None:
        self.port, self.double_port = free_port(), free_port()
        super().__init__(
            tmp_path,
            ["demo", "--port", str(self.port), "--double-port", str(self.double_port), "--speed", str(speed)],
        )
        self.url = self.username = self.password = None

    def wait_for_login(self, timeout_s: float = 120.0) -> None:
        self.url, self.username, self.password = self.wait_for_line(LOGIN_LINE, timeout_s).groups()
        self.wait_for_port(self.port)  # daphne listening

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
