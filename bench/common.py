"""What the benchmarks share: Django set-up, the figure rows, the one table and the results file,
a daphne subprocess on loopback, and a websocket client (the `websockets` library) to it.

A figure row is a plain dict, so `python -m bench` can print and store every module's figures
the same way:

    {"bench": "websocket", "metric": "commit -> frame, 10 clients, p50", "value": 2.1, "unit": "ms",
     "reference": "Redis PUBLISH -> SUBSCRIBE, 10 subscribers, p50", "reference_value": 0.3,
     "note": ""}
"""

from __future__ import annotations

import json
import math
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Origin

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "bench" / "results"
RESULTS_SCHEMA = 1


# --- Django and the services ---------------------------------------------------------------


def setup_django() -> None:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()


def missing_services() -> str | None:
    """Why a PostgreSQL + Redis benchmark cannot run here, or None when it can."""
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        return "needs DATABASE_URL=postgres://... (./dev bench starts a throwaway PostgreSQL)"
    if not os.environ.get("REDIS_URL"):
        return "needs REDIS_URL (./dev bench starts a throwaway Redis)"
    return None


def migrate() -> None:
    """Bring the database DATABASE_URL names up to date (quietly; a no-op when it already is)."""
    import logging

    from django.core.management import call_command

    logging.disable(logging.INFO)
    call_command("migrate", verbosity=0)


# --- figures -------------------------------------------------------------------------------


def figure(
    bench: str,
    metric: str,
    value: float | int | None,
    unit: str,
    reference: str | None = None,
    reference_value: float | int | None = None,
    note: str = "",
) -> dict[str, Any]:
    return {
        "bench": bench,
        "metric": metric,
        "value": value,
        "unit": unit,
        "reference": reference,
        "reference_value": reference_value,
        "note": note,
    }


def skipped(bench: str, reason: str) -> list[dict[str, Any]]:
    return [figure(bench, "skipped", None, "", note=reason)]


def percentile(values: Iterable[float], fraction: float) -> float | None:
    """Nearest-rank percentile (None for no values)."""
    ordered = sorted(values)
    if not ordered:
        return None
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def _number(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool | str):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    magnitude = abs(value)
    if magnitude >= 100:
        return f"{value:,.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def ratio(row: dict[str, Any]) -> str:
    value, reference_value = row.get("value"), row.get("reference_value")
    if (
        not isinstance(value, int | float)
        or not isinstance(reference_value, int | float)
        or not reference_value
    ):
        return ""
    return f"x{value / reference_value:.2f}"


def print_table(rows: list[dict[str, Any]], title: str) -> None:
    """Every figure on one line, next to its reference and value / reference."""
    headers = ("bench", "metric", "value", "unit", "reference (same run)", "ref value", "ratio")
    cells = [
        (
            row["bench"],
            row["metric"],
            _number(row.get("value")),
            row.get("unit") or "",
            row.get("reference") or "",
            _number(row.get("reference_value")) if row.get("reference") else "",
            ratio(row),
        )
        for row in rows
    ]
    widths = [max([len(h)] + [len(c[i]) for c in cells]) for i, h in enumerate(headers)]
    right = {2, 5, 6}

    def line(values: Iterable[str]) -> str:
        return "  ".join(
            v.rjust(widths[i]) if i in right else v.ljust(widths[i]) for i, v in enumerate(values)
        ).rstrip()

    print(f"\n{title}\n")
    print(line(headers))
    print(line("-" * w for w in widths))
    for row, cell in zip(rows, cells, strict=True):
        print(line(cell))
        if row.get("note"):
            print(" " * (widths[0] + 2) + f"  ({row['note']})")


def machine() -> dict[str, Any]:
    def git(*args: str) -> str:
        try:
            return subprocess.run(
                ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    return {
        "hostname": platform.node(),
        "cpus": os.cpu_count(),
        "loadavg": loadavg(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "git_commit": git("rev-parse", "HEAD"),
        "git_dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
    }


def loadavg() -> str:
    try:
        return Path("/proc/loadavg").read_text().strip()
    except OSError:
        return ""


def write_results(document: dict[str, Any]) -> Path:
    """bench/results/<UTC timestamp>.json and a copy as latest.json (the folder is git-ignored)."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    text = json.dumps({"schema": RESULTS_SCHEMA, **document}, indent=2, default=str) + "\n"
    path = RESULTS_DIR / f"{stamp}.json"
    path.write_text(text)
    latest = RESULTS_DIR / "latest.json"
    tmp = latest.with_suffix(".json.tmp")
    tmp.write_text(text)
    tmp.replace(latest)
    return path


# --- a real daphne on loopback -------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Daphne:
    """`daphne config.asgi:application` on a free loopback port, with DEBUG off (production
    settings) except the HTTPS redirect and secure cookies: loopback is plain HTTP, as behind a
    TLS-terminating proxy. Uses DATABASE_URL and REDIS_URL as given."""

    name = "one daphne"

    def __init__(self, **env: str) -> None:
        self.port = free_port()
        self.env = {
            **os.environ,
            "DJANGO_DEBUG": "0",
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
            "DJANGO_SECURE_SSL_REDIRECT": "0",
            "DJANGO_SECURE_COOKIES": "0",
            **env,
        }
        self.process: subprocess.Popen | None = None
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 (closed in __exit__)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "daphne",
            "-b",
            "127.0.0.1",
            "-p",
            str(self.port),
            "config.asgi:application",
        ]

    def ready(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            return True
        except OSError:
            return False

    def __enter__(self) -> Daphne:
        self.process = subprocess.Popen(
            self.command(), cwd=ROOT, env=self.env, stdout=subprocess.DEVNULL, stderr=self._stderr
        )
        deadline = time.monotonic() + 30
        while not self.ready():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.__exit__(None, None, None)
                raise RuntimeError(f"{self.name} did not start: {self.stderr_tail()}")
            time.sleep(0.1)
        return self

    def stderr_tail(self, chars: int = 2000) -> str:
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")[-chars:]

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._stderr.close()


class Uvicorn(Daphne):
    """`uvicorn config.asgi:application --workers N` as the Dockerfile runs it (N: WEB_CONCURRENCY
    there), same environment as Daphne; ready once every worker has loaded the application."""

    def __init__(self, workers: int = 1, **env: str) -> None:
        super().__init__(**env)
        self.workers = workers
        self.name = f"uvicorn, {workers} worker{'s' if workers > 1 else ''}"

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "uvicorn",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            str(self.workers),
            "--no-access-log",
            "config.asgi:application",
        ]

    def ready(self) -> bool:
        return self.stderr_tail(1_000_000).count("Application startup complete") >= self.workers


# --- a websocket client, as a browser tab connects ----------------------------------------


async def websocket_connect(port: int, path: str, *, cookie: str | None = None) -> ClientConnection:
    """A websocket to the daphne on `port`, with the Origin a page on that server sends and its
    session cookie. No compression: the frames are measured as sent."""
    return await connect(
        f"ws://127.0.0.1:{port}{path}",
        origin=Origin(f"http://127.0.0.1:{port}"),
        additional_headers={"Cookie": cookie} if cookie else None,
        compression=None,
    )
