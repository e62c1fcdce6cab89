"""Settings of the daphne that bench_api measures: the product's, plus the floor's URLs
(bench/urls.py). The product never loads this module."""

from config.settings import *  # noqa: F403

ROOT_URLCONF = "bench.urls"
