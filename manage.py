#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

import os
import signal
import sys

# Commands that run until stopped install their own SIGINT/SIGTERM handlers once they start
# (config/shutdown.py). Until then, a SIGINT inherited as ignored (a background job) would be
# lost: restore Python's Ctrl-C for the seconds Django takes to start them.
RUN_UNTIL_STOPPED = {"demo", "ingest_run", "exchange_double", "record"}


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    try:
        if len(sys.argv) > 1 and sys.argv[1] in RUN_UNTIL_STOPPED:
            signal.signal(signal.SIGINT, signal.default_int_handler)
        from django.core.management import execute_from_command_line

        execute_from_command_line(sys.argv)
    except KeyboardInterrupt:
        sys.exit(130)  # stopped before it could stop in order: nothing started yet to tidy up


if __name__ == "__main__":
    main()
