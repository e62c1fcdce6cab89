#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

import os
import signal
import sys
import threading

# Commands that run until stopped install their own SIGINT/SIGTERM handlers once they start
# (config/shutdown.py). Until then, a SIGINT inherited as ignored (a background job) would be
# lost: restore Python's Ctrl-C for the seconds Django takes to start them.
RUN_UNTIL_STOPPED = {"demo", "ingest_run", "exchange_double", "record"}


def _interrupt_again_if_swallowed(unraisable: "sys.UnraisableHookArgs") -> None:
    """A Ctrl-C whose handler ran inside a finalizer (`__del__`, a weakref callback) is printed
    and dropped by Python, and the command would then start as if never interrupted. Send the
    signal again: it lands in ordinary code (KeyboardInterrupt) or, once the command is up, in
    the command's own handlers (an orderly stop)."""
    if issubclass(unraisable.exc_type, KeyboardInterrupt):
        # A moment later, from another thread: a signal raised in this hook would be handled,
        # and dropped, in this hook.
        resend = threading.Timer(0.05, os.kill, args=(os.getpid(), signal.SIGINT))
        resend.daemon = True
        resend.start()
        return
    sys.__unraisablehook__(unraisable)


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    try:
        if len(sys.argv) > 1 and sys.argv[1] in RUN_UNTIL_STOPPED:
            signal.signal(signal.SIGINT, signal.default_int_handler)
            sys.unraisablehook = _interrupt_again_if_swallowed
        from django.core.management import execute_from_command_line

        execute_from_command_line(sys.argv)
    except KeyboardInterrupt:
        sys.exit(130)  # stopped before it could stop in order: nothing started yet to tidy up


if __name__ == "__main__":
    main()
