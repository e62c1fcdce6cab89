"""The two shapes of settings: production passes check --deploy; the embedded default needs no server."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "DJANGO_DEBUG"}}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow
def test_production_settings_pass_check_deploy_without_warnings():
    result = _manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        env={
            "DJANGO_DEBUG": "0",
            "DJANGO_SECRET_KEY": "x7Gq2-very-long-and-random-production-secret-key-3Jk9mPq0zRt5uWv8yB1c",
            "FIELD_ENCRYPTION_KEY": "lJeH8y1aqlogdtbMrJmuqB441M_wtq0ZgG0nBFzT0DY=",
            "DJANGO_ALLOWED_HOSTS": "arbsim.example.com",
            "DATABASE_URL": "postgres://arbsim@127.0.0.1:1/arbsim",
            "REDIS_URL": "redis://127.0.0.1:1/0",
        },
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


@pytest.mark.slow
def test_a_missing_secret_key_is_a_clear_error(tmp_path):
    result = _manage(
        "check",
        env={
            "DJANGO_SECRET_KEY": "",
            "FIELD_ENCRYPTION_KEY": "k",
            "SQLITE_PATH": str(tmp_path / "x.sqlite3"),
        },
    )
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY is not set" in result.stderr


@pytest.mark.slow
def test_embedded_default_is_sqlite_in_wal_mode_with_in_process_tasks(tmp_path):
    code = (
        "from django.conf import settings; from django.db import connection;"
        "c = connection.cursor(); c.execute('PRAGMA journal_mode'); print(c.fetchone()[0]);"
        "print(settings.CHANNEL_LAYERS['default']['BACKEND']); print(settings.CELERY_TASK_ALWAYS_EAGER)"
    )
    result = _manage("shell", "-c", code, env={"SQLITE_PATH": str(tmp_path / "embedded.sqlite3")})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-3:] == ["wal", "channels.layers.InMemoryChannelLayer", "True"]


@pytest.mark.slow
def test_with_ingest_shards_each_tick_goes_to_every_shards_own_queue_and_tick_s_0_sends_none(tmp_path):
    code = (
        "from django.conf import settings;"
        "print([e['options']['queue'] for n, e in settings.CELERY_BEAT_SCHEDULE.items() if n.startswith('ingest-live-tick')])"
    )
    env = {"SQLITE_PATH": str(tmp_path / "embedded.sqlite3")}
    result = _manage("shell", "-c", code, env={**env, "INGEST_SHARDS": "2"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[-2] == "['ingest-1', 'ingest-2']"

    # The docker-compose beat: the ingest_run processes hold the streams, no tick is sent.
    no_ticks = _manage("shell", "-c", code, env={**env, "INGEST_SHARDS": "2", "INGEST_TICK_S": "0"})
    assert no_ticks.returncode == 0, no_ticks.stderr
    assert no_ticks.stdout.split("\n")[-2] == "[]"

    refused = _manage("check", env={**env, "INGEST_SHARDS": "0"})
    assert refused.returncode != 0
    assert "INGEST_SHARDS must be 1 to 1024, got 0" in refused.stderr
    refused = _manage("check", env={**env, "INGEST_TICK_S": "-1"})
    assert refused.returncode != 0
    assert "INGEST_TICK_S must be 0 (no ticks) or more seconds, got -1" in refused.stderr
    refused = _manage("check", env={**env, "INGEST_LIFECYCLE_S": "0"})
    assert refused.returncode != 0  # a pass every 0 s would ask the venues without pause
    assert "INGEST_LIFECYCLE_S must be 1 to 86400 seconds, got 0" in refused.stderr


@pytest.mark.slow
def test_the_arrival_scheduler_setting_needs_redis_and_a_known_mode(tmp_path):
    env = {"SQLITE_PATH": str(tmp_path / "x.sqlite3")}
    refused = _manage("check", env={**env, "SIMULATOR_ARRIVALS": "scheduler"})
    assert refused.returncode != 0
    assert "SIMULATOR_ARRIVALS=scheduler needs REDIS_URL" in refused.stderr
    refused = _manage("check", env={**env, "SIMULATOR_ARRIVALS": "cron"})
    assert refused.returncode != 0
    assert "SIMULATOR_ARRIVALS must be scheduler, celery or timer" in refused.stderr
    # The command says so too, naming what it needs.
    refused = _manage("sim_arrivals", env=env)
    assert refused.returncode != 0
    assert "REDIS_URL is not set: the scheduler takes its steps from Redis" in refused.stderr
