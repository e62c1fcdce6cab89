"""Settings from the environment (twelve-factor), read through django-environ.

Two shapes:
- embedded default (no DATABASE_URL, no REDIS_URL): SQLite in WAL mode, the in-memory channel
  layer, Celery tasks run in-process. This is what `./dev demo` uses on a fresh machine.
- deployment: DATABASE_URL=postgres://..., REDIS_URL=redis://... gives PostgreSQL (psycopg 3),
  channels-redis and Celery on Redis.

Values may also come from `var/.env` (written by `./dev setup` with fresh random keys); real
environment variables win over it.
"""

import os
import re
from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()
if (VAR_DIR / ".env").is_file():
    env.read_env(str(VAR_DIR / ".env"), overwrite=False)

DEBUG = env.bool("DJANGO_DEBUG", default=False)
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="")
if not SECRET_KEY:
    raise ImproperlyConfigured(
        "DJANGO_SECRET_KEY is not set: run `./dev setup` (writes var/.env) or export it."
    )
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "axes",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "encrypted_model_fields",
    "accounts",
    "exchanges",
    "ingest",
    "simulator",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "config.middleware.StaticFilesMiddleware",  # WhiteNoise, async-capable
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: it turns a login refused during a lockout into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -----------------------------------------------------------------------------
DATABASE_URL = env.str("DATABASE_URL", default="")
if DATABASE_URL:
    DATABASES = {"default": env.db_url_config(DATABASE_URL)}
    # DB_POOL_SIZE > 0 (config/asgi.py sets 10 for the web server): a psycopg pool of at most that
    # many connections per process. Under ASGI every request runs its synchronous part in a thread
    # of its own, so a persistent (per-thread) connection is never reused: without a pool each
    # request would open a new PostgreSQL session. Workers and commands keep one persistent one.
    DB_POOL_SIZE = env.int("DB_POOL_SIZE", default=0)
    if DB_POOL_SIZE > 0:
        from psycopg_pool import ConnectionPool

        DATABASES["default"]["CONN_MAX_AGE"] = 0
        DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
            "min_size": 1,
            "max_size": DB_POOL_SIZE,
            "timeout": env.float("DB_POOL_TIMEOUT_S", default=10.0),
            "check": ConnectionPool.check_connection,  # a connection broken by a restart is replaced
        }
    else:
        DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DB_CONN_MAX_AGE", default=60))
        DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
else:
    VAR_DIR.mkdir(exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": env.str("SQLITE_PATH", default=str(VAR_DIR / "arbsim.sqlite3")),
            "OPTIONS": {
                # WAL lets the page read while the ingest loop writes; IMMEDIATE takes the write
                # lock at BEGIN so two writers queue on the busy timeout instead of deadlocking.
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
            },
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: channel layer and Celery ------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
# Pub/Sub: a group send is one PUBLISH that Redis fans out to the daphne processes whose sockets
# joined the group. The list-based RedisChannelLayer costs the sending worker ~4x the CPU per
# send (docs/benchmarks.md, "engine"); websocket events need none of its queueing or capacity.
REDIS_CHANNEL_LAYER = "channels_redis.pubsub.RedisPubSubChannelLayer"
if REDIS_URL:
    CHANNEL_LAYERS = {"default": {"BACKEND": REDIS_CHANNEL_LAYER, "CONFIG": {"hosts": [REDIS_URL]}}}
    CELERY_BROKER_URL = REDIS_URL
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    CELERY_BROKER_URL = "memory://"
# Without Redis there is no broker to reach a worker: tasks run in-process.
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=not REDIS_URL)
# Backtests: how many grid points one may have, and how many processes one may use.
BACKTEST_MAX_POINTS = env.int("BACKTEST_MAX_POINTS", default=64)
BACKTEST_MAX_WORKERS = env.int("BACKTEST_MAX_WORKERS", default=max(1, os.cpu_count() or 1))
# A backtest that has not moved for this long lost its process: beat's sweep ends it as failed.
BACKTEST_STALL_S = env.int("BACKTEST_STALL_S", default=1800)
# How a traded decision's orders arrive (simulator/tasks.py): scheduler (handed through Redis to
# the `sim_arrivals` process, which runs each at its time: docker-compose), celery (tasks due at
# their arrival time, on the workers; eager tasks run at once) or timer (a thread of this
# process: the demo).
SIMULATOR_ARRIVALS = env("SIMULATOR_ARRIVALS", default="celery")
if SIMULATOR_ARRIVALS not in ("scheduler", "celery", "timer"):
    raise ImproperlyConfigured("SIMULATOR_ARRIVALS must be scheduler, celery or timer")
if SIMULATOR_ARRIVALS == "scheduler" and not REDIS_URL:
    raise ImproperlyConfigured("SIMULATOR_ARRIVALS=scheduler needs REDIS_URL (the steps go through Redis)")
# Validation and arrivals read the books live ingest streams (ingest/stream_books.py) when they
# are at most this old, and the venue's REST API otherwise.
SIMULATOR_STREAM_BOOKS = env.bool("SIMULATOR_STREAM_BOOKS", default=True)
SIMULATOR_STREAM_BOOK_MAX_AGE_MS = env.int("SIMULATOR_STREAM_BOOK_MAX_AGE_MS", default=2000)
if not 100 <= SIMULATOR_STREAM_BOOK_MAX_AGE_MS <= 60_000:
    raise ImproperlyConfigured(
        f"SIMULATOR_STREAM_BOOK_MAX_AGE_MS must be 100 to 60000, got {SIMULATOR_STREAM_BOOK_MAX_AGE_MS}"
    )
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TIMEZONE = "UTC"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# With acks_late, a task whose worker died is redelivered once this many seconds have passed
# without an ack (Redis's default is an hour). Keep it above the longest decision.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT_S", default=60)}
# Per-run decisions have their own queue so a burst of intents never waits behind ingest ticks.
# The ingest tick keeps its detector state in the worker process: run its queue with concurrency 1.
# The resolution pass keeps no state and must run whatever the shards: on the default queue.
CELERY_TASK_ROUTES = {
    "ingest.tasks.follow_lifecycle": {"queue": "celery"},
    # A backtest runs for minutes: never in front of the decisions.
    "simulator.backtest_tasks.run_backtest_task": {"queue": "backtests"},
    "simulator.tasks.*": {"queue": "simulator"},
    "ingest.tasks.*": {"queue": "ingest"},
}
# Seconds between the resolution passes over REST (ingest.lifecycle).
INGEST_LIFECYCLE_S = env.float("INGEST_LIFECYCLE_S", default=30.0)
if not 1 <= INGEST_LIFECYCLE_S <= 86400:
    raise ImproperlyConfigured(f"INGEST_LIFECYCLE_S must be 1 to 86400 seconds, got {INGEST_LIFECYCLE_S:g}")
CELERY_BEAT_SCHEDULE = {
    "expire-runs": {"task": "simulator.tasks.expire_runs", "schedule": 30.0},
    # The broker can lose a message when a worker dies at the wrong moment: the DB knows better.
    "redispatch-undecided": {"task": "simulator.tasks.redispatch_undecided", "schedule": 30.0},
    "redispatch-overdue-arrivals": {"task": "simulator.tasks.redispatch_overdue_arrivals", "schedule": 10.0},
    "fail-stalled-backtests": {"task": "simulator.tasks.fail_stalled_backtests", "schedule": 60.0},
    # Markets followed to resolution over REST (ingest.lifecycle): pairs paid without a command.
    "ingest-follow-lifecycle": {
        "task": "ingest.tasks.follow_lifecycle",
        "schedule": INGEST_LIFECYCLE_S,
    },
}
# Live ingest ticks. With INGEST_SHARDS=N > 1, each tick goes to N queues, ingest-1 .. ingest-N:
# the worker of shard I consumes ingest-I alone and polls its share (INGEST_SHARD=I/N).
INGEST_SHARDS = env.int("INGEST_SHARDS", default=1)
if not 1 <= INGEST_SHARDS <= 1024:
    raise ImproperlyConfigured(f"INGEST_SHARDS must be 1 to 1024, got {INGEST_SHARDS}")
# INGEST_TICK_S=0: no ticks at all (live ingest runs as `ingest_run --live` processes instead).
INGEST_TICK_S = env.float("INGEST_TICK_S", default=1.0)
if not 0 <= INGEST_TICK_S < float("inf"):
    raise ImproperlyConfigured(f"INGEST_TICK_S must be 0 (no ticks) or more seconds, got {INGEST_TICK_S:g}")
if INGEST_TICK_S and INGEST_SHARDS == 1:
    CELERY_BEAT_SCHEDULE["ingest-live-tick"] = {"task": "ingest.tasks.live_tick", "schedule": INGEST_TICK_S}
elif INGEST_TICK_S:
    for _shard in range(1, INGEST_SHARDS + 1):
        CELERY_BEAT_SCHEDULE[f"ingest-live-tick-{_shard}"] = {
            "task": "ingest.tasks.live_tick",
            "schedule": INGEST_TICK_S,
            "options": {"queue": f"ingest-{_shard}"},
        }

# --- Cache: the login and API limits count here -------------------------------------------
# Redis when there is one, so every server process sees the same counts; else this process's memory.
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Auth ---------------------------------------------------------------------------------
AUTHENTICATION_BACKENDS = [
    # django-axes first: it refuses a locked-out username or address before any password check.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/simulator/"
LOGOUT_REDIRECT_URL = "login"

# The address a request comes from: REMOTE_ADDR, unless the server sits behind this many reverse
# proxies that each append to X-Forwarded-For (then the address the outermost one saw). Leave it
# at 0 unless a proxy you run sets that header: a client can write anything into it.
TRUSTED_PROXY_COUNT = env.int("DJANGO_TRUSTED_PROXY_COUNT", default=0)

# Failed logins (the login page and the admin's), counted per username and per client address
# apart: LOGIN_FAILURE_LIMIT failures of either lock it out for LOGIN_COOLOFF_MINUTES (429 with
# Retry-After), and every attempt during the lockout starts the wait again. An admin lifts a lock
# in the admin's "Access attempts" or with `manage.py axes_reset_username NAME` / `axes_reset_ip ADDR`.
AXES_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5)
LOGIN_COOLOFF_MINUTES = env.int("LOGIN_COOLOFF_MINUTES", default=15)
if AXES_FAILURE_LIMIT < 1 or LOGIN_COOLOFF_MINUTES < 1:
    raise ImproperlyConfigured("LOGIN_FAILURE_LIMIT and LOGIN_COOLOFF_MINUTES must be at least 1.")
AXES_COOLOFF_TIME = timedelta(minutes=LOGIN_COOLOFF_MINUTES)
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_CLIENT_IP_CALLABLE = "config.throttles.client_address"
AXES_LOCKOUT_CALLABLE = "accounts.lockout.locked_out_response"
AXES_HTTP_RESPONSE_CODE = 429
AXES_CLIENT_STR_CALLABLE = "accounts.lockout.client_str"
AXES_VERBOSE = False


def _throttle_rate(name: str, default: str) -> str | None:
    """An API rate from the environment: `N/second`, `N/minute`, `N/hour`, `N/day`, or `off`."""
    rate = env.str(name, default=default).strip().lower()
    if rate == "off":
        return None
    if not re.fullmatch(r"[1-9][0-9]*/(s|sec|second|m|min|minute|h|hour|d|day)", rate):
        raise ImproperlyConfigured(f"{name}={rate!r}: expected a rate such as 30/minute, or off.")
    return rate


API_THROTTLE_RATES = {
    # Per client address: unknown, malformed or deactivated tokens, then 429 until the window passes.
    "failed_token": _throttle_rate("API_RATE_FAILED_TOKENS", "10/minute"),
    # Per user: POST/PUT/PATCH/DELETE (start, stop, profile and secret changes). Reads are not counted.
    "write": _throttle_rate("API_RATE_WRITES", "60/minute"),
    # Per user: GET /simulator/report scans hours of spans.
    "report": _throttle_rate("API_RATE_REPORT", "30/minute"),
    # Per client address: requests without a user to what is open to them (the OpenAPI schema).
    "anon": _throttle_rate("API_RATE_ANONYMOUS", "60/minute"),
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "config.authentication.GuessLimitedTokenAuthentication",
    ],
    "DEFAULT_THROTTLE_CLASSES": [
        "config.throttles.AnonThrottle",
        "config.throttles.WriteThrottle",
        "config.throttles.ScopedThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": API_THROTTLE_RATES,
    "NUM_PROXIES": TRUSTED_PROXY_COUNT,
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": [
        "config.renderers.ORJSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_PARSER_CLASSES": [
        "config.parsers.SafeJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_PAGINATION_CLASS": "config.pagination.CheckedPageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "COERCE_DECIMAL_TO_STRING": True,
    "EXCEPTION_HANDLER": "config.errors.api_exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "arbsim: dry-run arbitrage simulator API",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "config.openapi.add_throttled_response",  # every operation may answer 429
    ],
    # Runs, trades and backtests each have a `status`; name their enums apart.
    "ENUM_NAME_OVERRIDES": {
        "RunStatusEnum": ["running", "stopped", "expired", "failed"],
        "TradeStatusEnum": ["queued", "executed", "settled"],
        "BacktestStatusEnum": ["queued", "running", "done", "failed"],
        "YesNoEnum": ["yes", "no"],  # a leg's side, and each venue's result of a pair
    },
}

# --- Secrets at rest ----------------------------------------------------------------------
# A comma-separated list, newest first: the library's MultiFernet encrypts with the first key and
# decrypts with any, so a key is rotated by prepending the new one, running
# `manage.py rotate_secrets_key`, then dropping the old one (docs/reliability.md).
FIELD_ENCRYPTION_KEY = [
    key.strip() for key in env.str("FIELD_ENCRYPTION_KEY", default="").split(",") if key.strip()
]
if not FIELD_ENCRYPTION_KEY:
    raise ImproperlyConfigured(
        "FIELD_ENCRYPTION_KEY is not set: run `./dev setup` (writes var/.env) or export a Fernet key."
    )

# --- I18N, static -------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
# Under daphne there is no runserver static handler: WhiteNoise serves straight from the
# finders in DEBUG, and from the collected, hashed files otherwise.
WHITENOISE_USE_FINDERS = DEBUG
WHITENOISE_AUTOREFRESH = DEBUG

# --- Production hardening (check --deploy clean when DEBUG is off) --------------------------
SESSION_COOKIE_SECURE = env.bool("DJANGO_SECURE_COOKIES", default=not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=not DEBUG)
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = not DEBUG
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
X_FRAME_OPTIONS = "DENY"
# Every response: this site's own files only, no inline script or style, no eval ('self' covers
# the page's websocket to the same host). data: images are the API docs' icons.
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF],
    "style-src": [CSP.SELF],
    "img-src": [CSP.SELF, "data:"],
    "connect-src": [CSP.SELF],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.SELF],
    "form-action": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
}

# --- Logging: key=value lines; the redaction filter masks key material in every record -------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"redact_secrets": {"()": "exchanges.redaction.SecretRedactionFilter"}},
    "formatters": {"kv": {"format": "ts=%(asctime)s level=%(levelname)s logger=%(name)s %(message)s"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "kv", "filters": ["redact_secrets"]}
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # One line per HTTP request to a venue is noise; the adapters log what matters.
        "httpx": {"level": "WARNING"},
        "kombu.connection": {"level": "ERROR"},
    },
}

# --- Operating it: /healthz and /metrics (docs/operations.md) ----------------------------------
# /healthz answers 503 when a stream's newest book data is older than this (a feed that only
# sends heartbeats), when fewer Celery workers than this answer a ping (0: not checked; the
# embedded default has none), and, with HEALTHZ_EXPECT_STREAMS, when no ingest process publishes.
HEALTHZ_MAX_DATA_AGE_S = env.float("HEALTHZ_MAX_DATA_AGE_S", default=60.0)
HEALTHZ_MIN_WORKERS = env.int("HEALTHZ_MIN_WORKERS", default=0 if CELERY_TASK_ALWAYS_EAGER else 1)
HEALTHZ_EXPECT_STREAMS = env.bool("HEALTHZ_EXPECT_STREAMS", default=False)
if HEALTHZ_MAX_DATA_AGE_S <= 0 or HEALTHZ_MIN_WORKERS < 0:
    raise ImproperlyConfigured("HEALTHZ_MAX_DATA_AGE_S must be above 0 and HEALTHZ_MIN_WORKERS at least 0.")
# /metrics: with a token, `Authorization: Bearer <token>`; without, requests from this machine
# only. A staff login may read it either way.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
# Probes and scrapers speak plain HTTP inside the deployment: no redirect to HTTPS for these two.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^metrics$"]

# --- The simulator ------------------------------------------------------------------------
SIMULATOR_MAX_RUNNING_PER_USER = 5
SIMULATOR_MAX_DURATION_MINUTES = 7 * 24 * 60
SIMULATOR_VALIDATION_TIMEOUT_S = env.float("SIMULATOR_VALIDATION_TIMEOUT_S", default=3.0)
SIMULATOR_BOOK_CACHE_TTL_S = env.float("SIMULATOR_BOOK_CACHE_TTL_S", default=0.25)
# A venue balance is kept this long, and asked again in the background once half as old
# (simulator/engine/validation.py says why seconds are enough for a dry run's check).
SIMULATOR_BALANCE_TTL_S = env.float("SIMULATOR_BALANCE_TTL_S", default=30.0)
if not 0 <= SIMULATOR_BALANCE_TTL_S <= 300:
    raise ImproperlyConfigured(
        f"SIMULATOR_BALANCE_TTL_S must be 0 to 300 seconds, got {SIMULATOR_BALANCE_TTL_S}"
    )

# --- Recordings for backtests (ingest/recording_files.py) -----------------------------------
# Every *.jsonl.gz under RECORDINGS_DIR may be named for a backtest; uploads from the page go to
# its uploads/<user id>/ folder. Created when the first upload arrives.
RECORDINGS_DIR = Path(env.str("RECORDINGS_DIR", default=str(BASE_DIR / "recordings")))
RECORDING_UPLOAD_MAX_BYTES = env.int("RECORDING_UPLOAD_MAX_BYTES", default=50 * 1_000_000)
if RECORDING_UPLOAD_MAX_BYTES < 1:
    raise ImproperlyConfigured(
        f"RECORDING_UPLOAD_MAX_BYTES must be at least 1, got {RECORDING_UPLOAD_MAX_BYTES}"
    )
