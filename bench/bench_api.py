"""The API under a loopback load: `GET /simulator/status` and `GET /simulator/runs/{id}/trades`
through a real daphne subprocess, driven by `wrk` (Debian package `wrk`), with token auth.

Not a test: returns figures (`python -m bench bench_api` prints them). Needs PostgreSQL and
Redis (DATABASE_URL, REDIS_URL; `./dev bench` starts both) and `wrk` on PATH (`apt-get install
wrk`); without it the figures are skipped with that message.

Scene: one user with a token, 5 running runs, the first with 500 trades (the trades endpoint
returns a full page of 50; status returns the runs and the 20 latest trades), and another user
with as many rows, so scoping by user is exercised.

Per endpoint: a 1 s warm-up, then `wrk -t1 -c8 -d8s --latency` (one daphne process, as the
Dockerfile runs it; 8 keep-alive connections): requests/s and p99 latency. The query count per
request is measured once with Django's test client and CaptureQueriesContext. References, same
server, same load: a static file served by WhiteNoise (no view, no database) and a 404 (the whole
Django middleware stack, no view, no database).

Run: .venv/bin/python -m bench bench_api
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from typing import Any

from bench.common import Daphne, figure, missing_services, setup_django, skipped

BENCH = "api"
WRK_THREADS, WRK_CONNECTIONS, WRK_SECONDS = 1, 8, 8
TRADES = 500
RUNS = 5
STATIC_PATH = "/static/css/app.css"
NOT_FOUND_PATH = "/bench-no-such-page"
UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def scene() -> tuple[str, int]:
    """Rows for the measured user (and as many for another user); returns (token, run id)."""
    from django.db import transaction
    from django.utils import timezone
    from rest_framework.authtoken.models import Token

    from tests.accounts.factories import UserFactory
    from tests.simulator.surface_fixtures import make_run, make_trade

    stamp = time.time_ns()
    now = timezone.now()
    first_run_id = 0
    token = ""
    with transaction.atomic():
        for owner in ("bench-api", "bench-api-other"):
            user = UserFactory(username=f"{owner}-{stamp}")
            runs = [make_run(user, label=f"bench api {n}", started_at=now) for n in range(RUNS)]
            for n in range(TRADES):
                make_trade(runs[0], executed_at=now - timezone.timedelta(seconds=n))
            if not token:
                token, first_run_id = Token.objects.create(user=user).key, runs[0].pk
    return token, first_run_id


def queries_per_request(path: str, token: str) -> int:
    from django.db import connection, reset_queries
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client(HTTP_HOST="127.0.0.1")
    # The log keeps the last 9,000 queries only: once full, CaptureQueriesContext sees none.
    reset_queries()
    with CaptureQueriesContext(connection) as captured:
        response = client.get(path, secure=True, headers={"authorization": f"Token {token}"})
    if response.status_code != 200:
        raise RuntimeError(f"GET {path} answered {response.status_code} in the test client")
    return len(captured)


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(number) * UNIT_MS[unit]


def wrk(url: str, token: str | None, seconds: int) -> dict[str, Any]:
    command = ["wrk", f"-t{WRK_THREADS}", f"-c{WRK_CONNECTIONS}", f"-d{seconds}s", "--latency", url]
    if token:
        command[1:1] = ["-H", f"Authorization: Token {token}"]
    output = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 30, check=True).stdout
    requests = re.search(r"(\d+) requests in", output)
    per_s = re.search(r"Requests/sec:\s+([\d.]+)", output)
    p50 = re.search(r"^\s+50%\s+(\S+)", output, re.MULTILINE)
    p99 = re.search(r"^\s+99%\s+(\S+)", output, re.MULTILINE)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors = re.search(r"Socket errors: (.*)", output)
    if not (requests and per_s and p50 and p99):
        raise RuntimeError(f"could not read wrk's output:\n{output}")
    return {
        "requests": int(requests.group(1)),
        "per_s": float(per_s.group(1)),
        "p50_ms": _ms(p50.group(1)),
        "p99_ms": _ms(p99.group(1)),
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
        "socket_errors": errors.group(1).strip() if errors else "",
    }


def status_of(url: str, token: str | None) -> int:
    request = urllib.request.Request(url, headers={"Authorization": f"Token {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def run() -> list[dict[str, Any]]:
    reason = missing_services()
    if reason:
        return skipped(BENCH, reason)
    if shutil.which("wrk") is None:
        return skipped(BENCH, "wrk is not installed: apt-get install -y wrk (Debian package), then rerun")
    setup_django()
    from django.db import connection

    from bench.common import migrate

    migrate()
    token, run_id = scene()
    endpoints = {
        "status": ("/simulator/status", token),
        "trades": (f"/simulator/runs/{run_id}/trades", token),
        "static": (STATIC_PATH, None),
        "404": (NOT_FOUND_PATH, None),
    }
    queries = {name: queries_per_request(endpoints[name][0], token) for name in ("status", "trades")}
    connection.close()  # daphne takes over the database; this process only waits
    results: dict[str, dict[str, Any]] = {}
    with Daphne() as server:
        for name, (path, auth) in endpoints.items():
            code = status_of(server.base_url + path, auth)
            expected = 404 if name == "404" else 200
            if code != expected:
                results[name] = {"error": f"GET {path} answered {code}, expected {expected}"}
                continue
            wrk(server.base_url + path, auth, 1)  # warm-up: imports, connections, caches
            results[name] = wrk(server.base_url + path, auth, WRK_SECONDS)
            print(f"  {name}: {results[name]}", flush=True)

    load = f"wrk -t{WRK_THREADS} -c{WRK_CONNECTIONS} -d{WRK_SECONDS}s, one daphne"
    references = {"static": f"GET {STATIC_PATH} (WhiteNoise)", "404": f"GET {NOT_FOUND_PATH} (404)"}
    reference = next((name for name in ("static", "404") if "error" not in results[name]), None)
    rows = []
    for name, label in (("status", "GET /simulator/status"), ("trades", "GET /simulator/runs/{id}/trades")):
        measured = results[name]
        if "error" in measured:
            rows.append(figure(BENCH, label, None, "", note=measured["error"]))
            continue
        for stat, unit, key in (("requests/s", "req/s", "per_s"), ("p99", "ms", "p99_ms")):
            ref = results.get(reference, {}) if reference else {}
            note = ""
            if key == "p99_ms":
                note = f"{load}; {measured['requests']} requests, non-2xx {measured['non_2xx']}"
                if measured["socket_errors"]:
                    note += f", socket errors {measured['socket_errors']}"
            rows.append(
                figure(
                    BENCH,
                    f"{label}, {stat}",
                    measured[key],
                    unit,
                    f"{references[reference]}, {stat}" if reference else None,
                    ref.get(key),
                    note=note,
                )
            )
        rows.append(figure(BENCH, f"{label}, queries per request", queries[name], "queries"))
    other = "404" if reference == "static" else None
    if other and "error" not in results[other]:
        rows.append(
            figure(
                BENCH,
                f"{references[other]}, requests/s",
                results[other]["per_s"],
                "req/s",
                f"{references['static']}, requests/s",
                results["static"]["per_s"],
                note=f"p99 {results[other]['p99_ms']:.1f} ms, static {results['static']['p99_ms']:.1f} ms",
            )
        )
    for name in ("static", "404"):
        if "error" in results[name]:
            rows.append(figure(BENCH, f"reference {references[name]}", None, "", note=results[name]["error"]))
    return rows


def main() -> None:
    from bench.common import print_table

    print_table(run(), "bench_api")


if __name__ == "__main__":
    main()
