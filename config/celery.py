import os

from celery import Celery
from celery.signals import task_postrun, task_prerun

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("arbsim")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()  # each app's tasks.py
app.autodiscover_tasks(["simulator"], related_name="sweeps")  # beat's periodic tasks
app.autodiscover_tasks(["simulator"], related_name="backtest_tasks")  # the `backtests` queue

# Celery's Django fix-up closes the database connection before and after every task unless this
# is set: each decision and each arrival step would open a new PostgreSQL session and prepare the
# engine's statements again (about 40 ms a task instead of 4; arrivals fell half a second behind
# at 100 orders/s, docs/benchmarks.md). A worker keeps its connection the way a web request does
# instead: Django's own check before and after each task closes one that is older than
# CONN_MAX_AGE or broken (CONN_HEALTH_CHECKS: a restarted database is reconnected to).
app.conf.CELERY_DB_REUSE_MAX = 10**9


@task_prerun.connect(weak=False)
@task_postrun.connect(weak=False)
def _close_old_database_connections(task: object = None, **_: object) -> None:
    # An eager task runs inside its caller's transaction (the demo, tests): not its to close.
    if task is None or getattr(task.request, "is_eager", False):
        return
    from django.db import close_old_connections

    close_old_connections()
