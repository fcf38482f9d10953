"""Kairos settings, read from the environment.

Every value a deployment changes comes from one environment variable, parsed by a typed helper
below. The defaults give a one-machine setup: a SQLite file, tasks run in-process and e-mail
written to a folder. Production sets DATABASE_URL, CELERY_BROKER_URL, EMAIL_URL and SECRET_KEY.
"""

import os
import secrets
import sys
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.core.exceptions import ImproperlyConfigured
from django.utils.crypto import salted_hmac

from marketing.queues import Queue

BASE_DIR = Path(__file__).resolve().parent.parent

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str = "") -> str:
    """Return the variable's text, or the default when it is unset."""
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    """Return the variable as a boolean, refusing values that are neither true nor false."""
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean; use 1/0, true/false, yes/no or on/off.")


def env_int(name: str, default: int) -> int:
    """Return the variable as an integer."""
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a whole number.") from None


def env_list(name: str, default: list[str]) -> list[str]:
    """Return the variable as a comma-separated list with blanks dropped."""
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def database_from_url(url: str) -> dict:
    """Turn `sqlite:///path` or `postgres://user:pass@host:port/name?opt=v` into DATABASES["default"]."""
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        path = unquote(parts.path)
        if parts.netloc:
            raise ImproperlyConfigured(f"DATABASE_URL {url!r}: use sqlite:///relative/path or sqlite:////absolute/path.")
        name = path[1:] if path.startswith("/") else path
        if not name:
            raise ImproperlyConfigured("DATABASE_URL for SQLite needs a file name, e.g. sqlite:///db.sqlite3.")
        if name != ":memory:" and not Path(name).is_absolute():
            name = str(BASE_DIR / name)
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": name,
            # Imports and workers write while the admin reads: wait for the lock instead of failing.
            "OPTIONS": {"timeout": 30, "transaction_mode": "IMMEDIATE"},
        }
    if parts.scheme in {"postgres", "postgresql", "pgsql"}:
        options = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": unquote(parts.path.lstrip("/")),
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": parts.hostname or "",
            "PORT": str(parts.port or ""),
            "CONN_MAX_AGE": env_int("DATABASE_CONN_MAX_AGE", 60),
            "CONN_HEALTH_CHECKS": True,
            "OPTIONS": options,
        }
    raise ImproperlyConfigured(f"DATABASE_URL scheme {parts.scheme!r} is not supported; use sqlite:// or postgres://.")


def email_from_url(url: str) -> dict:
    """Turn `smtp://user:pass@host:587?tls=1` (or smtps://) into Django's EMAIL_* settings."""
    parts = urlsplit(url)
    query = {key: values[-1].lower() for key, values in parse_qs(parts.query).items()}
    if parts.scheme not in {"smtp", "smtps"}:
        raise ImproperlyConfigured(f"EMAIL_URL scheme {parts.scheme!r} is not supported; use smtp:// or smtps://.")
    if not parts.hostname:
        raise ImproperlyConfigured(f"EMAIL_URL {url!r} names no host.")
    ssl = parts.scheme == "smtps" or query.get("ssl") in _TRUE
    return {
        "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "EMAIL_HOST": parts.hostname,
        "EMAIL_PORT": parts.port or (465 if ssl else 25),
        "EMAIL_HOST_USER": unquote(parts.username or ""),
        "EMAIL_HOST_PASSWORD": unquote(parts.password or ""),
        "EMAIL_USE_SSL": ssl,
        "EMAIL_USE_TLS": not ssl and query.get("tls") in _TRUE,
    }


def time_zone(name: str) -> str:
    """Return a valid IANA zone name, refusing unknown ones at start rather than at send time."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ImproperlyConfigured(f"TIME_ZONE={name!r} is not an IANA time zone such as Europe/Berlin.") from None
    return name


DEBUG = env_bool("DEBUG", False)



def development_secret_key(path: Path) -> str:
    """Return this installation's own development key, generating it into a git-ignored file on first run.

    A key written in the source would be everyone's key: anyone could forge unsubscribe links for
    a demo that is reachable. Each checkout gets its own instead.
    """
    try:
        key = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        key = ""
    if len(key) >= 50:
        return key
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(64)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(key + "\n")
    return key


SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY is not set. Set it, or set DEBUG=1 for a development machine.")
    SECRET_KEY = development_secret_key(Path(env_str("DEVELOPMENT_SECRET_KEY_FILE", str(BASE_DIR / "var" / "secret_key"))))


def derived_key(purpose: str) -> str:
    """Return a key for one purpose, derived from SECRET_KEY with a salt, so no use sees the raw key."""
    return salted_hmac(f"kairos.{purpose}", "key", secret=SECRET_KEY, algorithm="sha256").hexdigest()


# Suppression entries are keyed HMACs of e-mail addresses; they must outlive a rotated SECRET_KEY,
# so production should set this key once and never change it.
SUPPRESSION_HMAC_KEY = env_str("SUPPRESSION_HMAC_KEY") or f"kairos.suppression:{SECRET_KEY}"

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "marketing.apps.MarketingConfig",
    "ml.apps.MlConfig",
    "campaigns.apps.CampaignsConfig",
    "anymail",
    "django_celery_beat",
    "axes",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: it turns a locked-out login into its lockout response.
    "axes.middleware.AxesMiddleware",
]

# Admin logins: django-axes locks a user name from one address out after AXES_FAILURE_LIMIT wrong
# passwords in a row, for AXES_COOLOFF_MINUTES, even if the right password follows.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = env_int("AXES_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("AXES_COOLOFF_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_VERBOSE = False
# Behind the TLS proxy, the client's address is the last one the proxy (TRUSTED_PROXY_COUNT of them) appended.
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 1)
AXES_IPWARE_PROXY_COUNT = TRUSTED_PROXY_COUNT if env_bool("BEHIND_TLS_PROXY", False) else None
AXES_IPWARE_META_PRECEDENCE_ORDER = (
    ("HTTP_X_FORWARDED_FOR", "REMOTE_ADDR") if env_bool("BEHIND_TLS_PROXY", False) else ("REMOTE_ADDR",)
)

# The cache holds rate-limit counters; several web processes share them through Redis (CACHE_URL).
CACHES = {
    "default": (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": env_str("CACHE_URL")}
        if env_str("CACHE_URL")
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    )
}
# Events API rate limits, per minute (marketing/throttling.py): answered 429 with Retry-After past them.
# A shop's backend posting one event per request at the engine's 100 a second stays well inside both;
# wrong keys, the guessing an attacker does, are limited far lower.
API_RATE_PER_KEY_PER_MINUTE = env_int("API_RATE_PER_KEY_PER_MINUTE", 30000)
API_RATE_PER_ADDRESS_PER_MINUTE = env_int("API_RATE_PER_ADDRESS_PER_MINUTE", 30000)
API_FAILED_KEYS_PER_ADDRESS_PER_MINUTE = env_int("API_FAILED_KEYS_PER_ADDRESS_PER_MINUTE", 10)
# Repeated clicks of one link in one message within this many seconds count once.
CLICK_REPEAT_WINDOW_S = env_int("CLICK_REPEAT_WINDOW_S", 60)

ROOT_URLCONF = "marketing.urls"
WSGI_APPLICATION = "marketing.wsgi.application"

TEMPLATES = [
    {
        # Django templates serve only the admin and its overrides under templates/admin/;
        # customer-facing content renders through the sandboxed Jinja environment.
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

DATABASES = {"default": database_from_url(env_str("DATABASE_URL", "sqlite:///db.sqlite3"))}
# The orders index covers status and total on PostgreSQL; SQLite builds it without them, which is
# all the embedded default needs, so its warning about the PostgreSQL-only part says nothing useful.
SILENCED_SYSTEM_CHECKS = ["models.W040"] if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3" else []
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
# TIME_ZONE is the shop's zone: naive times in imports are read in it and the admin shows it.
# Every timestamp is stored in UTC (USE_TZ).
TIME_ZONE = time_zone(env_str("TIME_ZONE", "UTC"))
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(BASE_DIR / "var" / "static")))

# E-mail: EMAIL_URL wins, then an explicit EMAIL_BACKEND, then a folder of .eml files.
EMAIL_FILE_PATH = Path(env_str("EMAIL_FILE_PATH", str(BASE_DIR / "outbox")))
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 30)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "Kairos <kairos@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
if env_str("EMAIL_URL"):
    globals().update(email_from_url(env_str("EMAIL_URL")))
else:
    EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.filebased.EmailBackend")

# Where recipients reach Kairos: tracking, unsubscribe and preference links are built on this.
# Mailbox providers require HTTPS for the List-Unsubscribe URL, so production must set it.
PUBLIC_BASE_URL = env_str("PUBLIC_BASE_URL", "http://127.0.0.1:8000" if DEBUG else "").rstrip("/")
# The mailto half of List-Unsubscribe; blank derives unsubscribe@<the sender's domain>.
UNSUBSCRIBE_MAILTO = env_str("UNSUBSCRIBE_MAILTO")
# Shown in every marketing e-mail's footer, as anti-spam laws require a postal address.
SHOP_NAME = env_str("SHOP_NAME", "Kairos Demo Shop")
SHOP_URL = env_str("SHOP_URL", "https://shop.example.com")
SHOP_POSTAL_ADDRESS = env_str("SHOP_POSTAL_ADDRESS", "1 Example Street, 10115 Berlin, Germany")
# Rendering limits for every template: a marketer's template cannot hold a worker hostage.
TEMPLATE_RENDER_TIMEOUT_MS = env_int("TEMPLATE_RENDER_TIMEOUT_MS", 2000)
TEMPLATE_MAX_OUTPUT_CHARS = env_int("TEMPLATE_MAX_OUTPUT_CHARS", 1_000_000)
# Where each recipient's product recommendations come from: a function taking customer ids and
# returning {customer_id: [product dicts]}. The default gives everyone an empty list.
RECOMMENDATION_SOURCE = env_str("RECOMMENDATION_SOURCE", "ml.recommendations.active_recommendations")
# Delivery: messages per task, each batch on one SMTP connection.
SEND_BATCH_SIZE = env_int("SEND_BATCH_SIZE", 200)
SEND_MAX_ATTEMPTS = env_int("SEND_MAX_ATTEMPTS", 6)
SEND_RETRY_BASE_S = env_int("SEND_RETRY_BASE_S", 60)  # doubled on every attempt
# A message still "sending" this long after its claim was interrupted; it becomes "unknown".
SEND_STALL_S = env_int("SEND_STALL_S", 900)
# The ESP whose webhooks (bounces, complaints, inbound mail) Kairos mounts, e.g. postmark or sendgrid;
# blank mounts none. Every webhook must present ANYMAIL_WEBHOOK_SECRET (`user:password`) as basic
# auth, and ESPs that sign their webhooks are also checked by anymail against their own key.
ESP_NAME = env_str("ESP_NAME").strip().lower()
ANYMAIL = {"WEBHOOK_SECRET": env_str("ANYMAIL_WEBHOOK_SECRET")} if env_str("ANYMAIL_WEBHOOK_SECRET") else {}

# Campaign engine: how often beat advances due enrollments, and how many per batch.
ENGINE_TICK_S = env_int("ENGINE_TICK_S", 5)
ENGINE_BATCH_SIZE = env_int("ENGINE_BATCH_SIZE", 200)
# An enrollment handed to a worker and not released this long after is handed over again.
ENGINE_STALL_S = env_int("ENGINE_STALL_S", 120)
# The tick repairs event hand-overs the broker lost: events stored at least this long ago that no
# enrollment names yet. The fast path takes well under a second; the wait lets every transaction that
# drew a lower event id commit first. Events read per campaign and tick at most (a few ms of SQL).
ENGINE_EVENT_REPAIR_S = env_int("ENGINE_EVENT_REPAIR_S", 60)
ENGINE_EVENT_REPAIR_BATCH = env_int("ENGINE_EVENT_REPAIR_BATCH", 5_000)
# Events stored by one web process within this many milliseconds go to the engine as one task: at
# 100 requests a second a worker pays its per-task cost once per few events (0: one task per request).
ENGINE_EVENT_GATHER_MS = env_int("ENGINE_EVENT_GATHER_MS", 100)
# Respecting people: across all campaigns, at most this many marketing messages per customer per window.
FREQUENCY_CAP_MESSAGES = env_int("FREQUENCY_CAP_MESSAGES", 3)
FREQUENCY_CAP_WINDOW_HOURS = env_int("FREQUENCY_CAP_WINDOW_HOURS", 24)
# No marketing message leaves between these local hours in the customer's own time zone.
QUIET_HOURS_START_HOUR = env_int("QUIET_HOURS_START_HOUR", 21)
QUIET_HOURS_END_HOUR = env_int("QUIET_HOURS_END_HOUR", 8)
# Webhook steps sign their bodies with this key (HMAC-SHA256, header X-Kairos-Signature).
WEBHOOK_SIGNING_KEY = env_str("WEBHOOK_SIGNING_KEY") or derived_key("webhooks")
WEBHOOK_TIMEOUT_S = env_int("WEBHOOK_TIMEOUT_S", 10)
# Webhook steps send customers' addresses: they may call only these hosts (".example.com" for a
# domain and its subdomains). Empty: no webhook step can be saved or run.
WEBHOOK_ALLOWED_HOSTS = env_list("WEBHOOK_ALLOWED_HOSTS", [])
WEBHOOK_MAX_ATTEMPTS = env_int("WEBHOOK_MAX_ATTEMPTS", 5)

# Celery: without a broker, tasks run in-process, in the caller, so one machine needs no Redis.
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL") or None
CELERY_TASK_ALWAYS_EAGER = CELERY_BROKER_URL is None
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_RESULT_BACKEND = env_str("CELERY_RESULT_BACKEND") or CELERY_BROKER_URL
CELERY_RESULT_EXPIRES = 3600
CELERY_TASK_DEFAULT_QUEUE = Queue.DEFAULT.value
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Waits live in the database (next_run_at), never in broker countdowns, so the visibility
# timeout only bounds how long a crashed worker's task stays invisible.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT_S", 3600)}
# The last line of defence for every task: a soft limit raises SoftTimeLimitExceeded inside it, the
# hard limit kills its process (acks_late hands the task over again; the database decides what was done).
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT_S", 600)
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT_S", CELERY_TASK_SOFT_TIME_LIMIT + 60)
# A file import streams the whole file in one task: a million rows take minutes, so it gets longer.
IMPORT_TASK_SOFT_TIME_LIMIT_S = env_int("IMPORT_TASK_SOFT_TIME_LIMIT_S", 3600)
CELERY_TASK_ANNOTATIONS = {
    "marketing.import_file": {
        "soft_time_limit": IMPORT_TASK_SOFT_TIME_LIMIT_S,
        "time_limit": IMPORT_TASK_SOFT_TIME_LIMIT_S + 60,
    },
}
# Each worker pool process's data segment is capped at this (0: no cap), so a template or task
# that escapes its own size checks gets MemoryError instead of taking the machine down.
WORKER_MEMORY_LIMIT_MB = env_int("WORKER_MEMORY_LIMIT_MB", 4096)
# Every task's queue is declared here, by task name; Celery 6 drops the per-task queue option.
CELERY_TASK_ROUTES = {
    "marketing.import_file": {"queue": Queue.IMPORTS.value},
    "marketing.refresh_segment": {"queue": Queue.SEGMENTS.value},
    "marketing.refresh_due_segments": {"queue": Queue.SEGMENTS.value},
    "marketing.refresh_all_segments": {"queue": Queue.SEGMENTS.value},
    "campaigns.send_messages": {"queue": Queue.EMAIL.value},
    "campaigns.dispatch_due_messages": {"queue": Queue.EMAIL.value},
    "campaigns.mark_stalled_messages": {"queue": Queue.EMAIL.value},
    "campaigns.queue_broadcast": {"queue": Queue.EMAIL.value},
    "campaigns.generate_content": {"queue": Queue.DEFAULT.value},
    "campaigns.engine_tick": {"queue": Queue.ENGINE.value},
    "campaigns.advance_enrollments": {"queue": Queue.ENGINE.value},
    "campaigns.enroll_for_events": {"queue": Queue.ENGINE.value},
    "campaigns.run_recurring_campaign": {"queue": Queue.ENGINE.value},
    "campaigns.process_messages": {"queue": Queue.ENGINE.value},
    "campaigns.process_unread_messages": {"queue": Queue.ENGINE.value},
    "ml.start_scoring_run": {"queue": Queue.SCORING.value},
    "ml.score_chunk": {"queue": Queue.SCORING.value},
    "ml.resume_stalled_runs": {"queue": Queue.SCORING.value},
    "ml.recommend_chunk": {"queue": Queue.SCORING.value},
}
# Beat keeps its schedule in the database: the entries below are written there at start, and each
# recurring campaign adds its own, which the admin can edit (Periodic tasks).
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# Every periodic task is declared here, each with an expiry so a backlog never piles up.
CELERY_BEAT_SCHEDULE: dict[str, dict] = {
    "refresh-due-segments": {
        "task": "marketing.refresh_due_segments",
        "schedule": 60.0,
        "options": {"expires": 55},
    },
    "engine-tick": {
        "task": "campaigns.engine_tick",
        "schedule": float(ENGINE_TICK_S),
        "options": {"expires": max(ENGINE_TICK_S - 1, 1)},
    },
    "dispatch-due-messages": {
        "task": "campaigns.dispatch_due_messages",
        "schedule": 10.0,
        "options": {"expires": 9},
    },
    "mark-stalled-messages": {
        "task": "campaigns.mark_stalled_messages",
        "schedule": 60.0,
        "options": {"expires": 55},
    },
    # Messages whose task was lost (broker down at commit, a dead worker) are read here instead.
    "process-unread-messages": {
        "task": "campaigns.process_unread_messages",
        "schedule": 15.0,
        "options": {"expires": 14},
    },
    "resume-stalled-scoring-runs": {
        "task": "ml.resume_stalled_runs",
        "schedule": 300.0,
        "options": {"expires": 290},
    },
}

# Purchase propensity (ml). Data gates refuse to train below these minimums, naming each one.
ML_HORIZON_DAYS = env_int("ML_HORIZON_DAYS", 90)
# Tuning snapshots at most, ML_SNAPSHOT_STEP_DAYS apart: a year of them, so the model learns each season.
ML_SNAPSHOTS = env_int("ML_SNAPSHOTS", 26)
ML_SNAPSHOT_STEP_DAYS = env_int("ML_SNAPSHOT_STEP_DAYS", 14)
ML_MIN_BUYERS = env_int("ML_MIN_BUYERS", 200)
ML_MIN_FEATURE_DAYS = env_int("ML_MIN_FEATURE_DAYS", 30)  # history before the oldest training cutoff
ML_MIN_RECENT_ORDERS = env_int("ML_MIN_RECENT_ORDERS", 10)
ML_RECENT_DAYS = env_int("ML_RECENT_DAYS", 30)
# Customers per training snapshot; larger stores are sampled deterministically by id.
ML_TRAINING_MAX_CUSTOMERS = env_int("ML_TRAINING_MAX_CUSTOMERS", 250_000)
# Rows over all snapshots of one training run: past it, every snapshot samples fewer customers.
ML_TRAINING_MAX_ROWS = env_int("ML_TRAINING_MAX_ROWS", 600_000)
# LightGBM's OpenMP threads spin while they wait: on a machine whose cores are shared (PostgreSQL,
# workers, the web app), two threads took 23 s where one took 1.2 s (100 trees, 85,000 rows, measured).
# Raise it on a machine that does nothing but train.
ML_TRAINING_THREADS = env_int("ML_TRAINING_THREADS", 1)
# Snapshot chunks read at once while training, each on its own database connection.
ML_READ_THREADS = env_int("ML_READ_THREADS", min(os.cpu_count() or 1, 4))
# Prefork workers are processes already: one LightGBM thread each avoids oversubscribing cores.
ML_SCORING_THREADS = env_int("ML_SCORING_THREADS", 1)
# Each chunk pays fixed costs per tree (explanations) and per query: 25,000 customers cost about a
# quarter less per customer than 10,000 (measured at 1M customers), and a million still make 40 tasks.
ML_SCORING_CHUNK_CUSTOMERS = env_int("ML_SCORING_CHUNK_CUSTOMERS", 25_000)
ML_DECILE_SAMPLE_CUSTOMERS = env_int("ML_DECILE_SAMPLE_CUSTOMERS", 20_000)
ML_SCORING_STALL_S = env_int("ML_SCORING_STALL_S", 600)
# Reasons are computed when a customer's page or the API asks; campaigns that need them for the
# likeliest buyers can have bulk scoring compute them for this many top deciles (0: none).
ML_REASONS_TOP_DECILES = env_int("ML_REASONS_TOP_DECILES", 0)
ML_FAIRNESS_THRESHOLD = float(env_str("ML_FAIRNESS_THRESHOLD") or 0.3)
ML_FAIRNESS_MIN_GROUP = env_int("ML_FAIRNESS_MIN_GROUP", 30)
# Recommendations: a year of purchases, views and clicks, judged on the 30 days after a cutoff.
ML_RECOMMEND_HISTORY_DAYS = env_int("ML_RECOMMEND_HISTORY_DAYS", 365)
ML_RECOMMEND_EVALUATION_DAYS = env_int("ML_RECOMMEND_EVALUATION_DAYS", 30)
# What a customer bought this recently is never recommended to them.
ML_RECOMMEND_EXCLUDE_BOUGHT_DAYS = env_int("ML_RECOMMEND_EXCLUDE_BOUGHT_DAYS", 30)
# Picks stored per customer: more than an e-mail shows, so products out of stock at send time can be skipped.
ML_RECOMMEND_STORED = env_int("ML_RECOMMEND_STORED", 12)
# About 1.5 s per chunk of 20,000 customers with ten products each (read, pick, COPY) in bench/recommend.py.
ML_RECOMMEND_CHUNK_CUSTOMERS = env_int("ML_RECOMMEND_CHUNK_CUSTOMERS", 20_000)
ML_RECOMMEND_MIN_PRODUCTS = env_int("ML_RECOMMEND_MIN_PRODUCTS", 10)
ML_RECOMMEND_MIN_BUYERS = env_int("ML_RECOMMEND_MIN_BUYERS", 50)
ML_RECOMMEND_MIN_ORDER_LINES = env_int("ML_RECOMMEND_MIN_ORDER_LINES", 200)
ML_RECOMMEND_MIN_JUDGED_BUYERS = env_int("ML_RECOMMEND_MIN_JUDGED_BUYERS", 20)
# Customers judged per window at most, spread evenly over those who bought (figures to about ±0.005), and
# customers whose histories the configuration is chosen on: training stays under a minute at a million.
ML_RECOMMEND_EVALUATION_CUSTOMERS = env_int("ML_RECOMMEND_EVALUATION_CUSTOMERS", 20_000)
ML_RECOMMEND_TUNING_CUSTOMERS = env_int("ML_RECOMMEND_TUNING_CUSTOMERS", 100_000)
# Send times (the defaults when the month before the judged one is too thin to choose them on): below this
# many opens and clicks, a customer's hour of the day is used, not of the week.
ML_SEND_TIME_WEEKLY_MIN_ENGAGEMENTS = env_int("ML_SEND_TIME_WEEKLY_MIN_ENGAGEMENTS", 20)
# Pseudo-engagements of the shop-wide pattern added to every customer's own (shrinkage).
ML_SEND_TIME_PRIOR_STRENGTH = float(env_str("ML_SEND_TIME_PRIOR_STRENGTH") or 5.0)
ML_SEND_TIME_HISTORY_DAYS = env_int("ML_SEND_TIME_HISTORY_DAYS", 365)

# Sales forecasts (ml.forecast): weekly units and revenue per category, see docs/forecasts.md.
FORECAST_HORIZON_WEEKS = env_int("FORECAST_HORIZON_WEEKS", 8)
FORECAST_BACKTEST_ORIGINS = env_int("FORECAST_BACKTEST_ORIGINS", 4)
FORECAST_INTERVAL_LEVEL = env_int("FORECAST_INTERVAL_LEVEL", 80)  # percent
FORECAST_MIN_HISTORY_WEEKS = env_int("FORECAST_MIN_HISTORY_WEEKS", 12)
FORECAST_MODEL_MIN_WEEKS = env_int("FORECAST_MODEL_MIN_WEEKS", 26)  # shorter categories use the best baseline
# LightGBM's threads spin while they wait for each other: on a busy 2-core machine two threads took
# six times as long as one (measured), and one model of ~300,000 rows trains in seconds anyway.
FORECAST_THREADS = env_int("FORECAST_THREADS", 1)
# Customer conversations (docs/conversations.md). Below this intent confidence nothing automatic
# happens: the message waits for a person.
CONVERSATION_MIN_CONFIDENCE = float(env_str("CONVERSATION_MIN_CONFIDENCE") or 0.6)
# Where replies come from; blank uses DEFAULT_FROM_EMAIL. Mail from it is never answered.
CONVERSATION_REPLY_FROM = env_str("CONVERSATION_REPLY_FROM")
# Inbound e-mail to these addresses becomes a conversation; blank takes every address but the unsubscribe one.
CONVERSATION_INBOUND_ADDRESSES = env_list("CONVERSATION_INBOUND_ADDRESSES", [])
# Automatic replies to one address per day at most (RFC 3834 asks responders not to repeat themselves).
CONVERSATION_AUTO_REPLIES_PER_DAY = env_int("CONVERSATION_AUTO_REPLIES_PER_DAY", 3)
# Messages classified per task and per beat pass.
CONVERSATION_BATCH_SIZE = env_int("CONVERSATION_BATCH_SIZE", 200)

# Production hardening: on whenever DEBUG is off; each can be relaxed behind a TLS proxy.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("BEHIND_TLS_PROXY", False) else None
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", not DEBUG)
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "stream": sys.stderr, "formatter": "plain"}},
    "loggers": {
        "kairos": {"handlers": ["stderr"], "level": env_str("LOG_LEVEL", "INFO"), "propagate": False},
    },
}

# Imports: rows validated and written per batch, so memory stays flat whatever the file size.
IMPORT_BATCH_ROWS = env_int("IMPORT_BATCH_ROWS", 20_000)

# Events API: bodies above this are refused (413) before they are read. 1,000 events of a few
# hundred bytes each take well under 1 MiB; the margin leaves room for rich properties.
API_MAX_BODY_BYTES = env_int("API_MAX_BODY_BYTES", 4 * 1024 * 1024)
