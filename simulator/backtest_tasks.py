"""Backtests in the background: a task on a Celery worker of the `backtests` queue, or, without a
broker (the embedded default), a thread of the serving process.

Apart from `simulator.tasks` because a backtest decides through those tasks: `backtests` imports
`tasks`, and this module imports `backtests`, never the other way round.
"""

from __future__ import annotations

import logging
import threading
from functools import partial
from typing import Any

from celery import shared_task
from django.conf import settings
from django.db import connections, transaction

from simulator.backtests import create_backtest, run_backtest
from simulator.models import Backtest

logger = logging.getLogger(__name__)


# Acknowledged on receipt: a backtest runs for minutes, longer than the broker's visibility
# timeout, and a redelivered copy must not start it twice. A worker that dies leaves it to beat's
# stalled-backtest sweep (it ends failed, saying so).
@shared_task(name="simulator.backtest_tasks.run_backtest_task", bind=True, acks_late=False)
def run_backtest_task(self, backtest_id: int) -> str:
    """A whole backtest (its grid points on the worker's processes), once."""
    return run_backtest(backtest_id).status


def start_backtest(*, user, **fields: Any) -> Backtest:
    """A backtest checked and saved (`create_backtest`), then run in the background once saved."""
    backtest = create_backtest(user=user, **fields)
    transaction.on_commit(partial(dispatch, backtest.pk))
    return backtest


def dispatch(backtest_id: int) -> None:
    """Run it in the background: on a Celery worker of the `backtests` queue (its points on
    `workers` processes), or, without a broker (the embedded default), on a thread of this
    process (its points one after another)."""
    if settings.CELERY_TASK_ALWAYS_EAGER:
        thread = threading.Thread(
            target=_run_in_thread, args=(backtest_id,), name=f"backtest-{backtest_id}", daemon=True
        )
        thread.start()
    else:
        run_backtest_task.delay(backtest_id)


def _run_in_thread(backtest_id: int) -> None:
    # The points one after another: forking worker processes from a thread of a serving process
    # (its event loop, its other threads' locks) is not safe. The results are the same.
    try:
        run_backtest(backtest_id, workers=1)
    except Exception:  # recorded on the backtest (status failed, error): nothing else to tell
        logger.info("event=backtest_thread_ended_in_failure backtest_id=%s", backtest_id)
    finally:
        connections.close_all()
