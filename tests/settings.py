"""Settings for the test suite: the project's own, with test-only defaults for what production must set.

The suite runs on PostgreSQL unless DATABASE_URL says otherwise (the SQLite run sets it). With
KAIROS_TEST_NOW set, the run's clock starts at that moment (tests/clock.py).
"""

import os

from tests.clock import start_run_clock

# Before anything reads the time: KAIROS_TEST_NOW moves this process's clock and its children's.
start_run_clock()

os.environ.setdefault("SECRET_KEY", "kairos-tests-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test")
os.environ.setdefault("SUPPRESSION_HMAC_KEY", "kairos-tests-suppression-key")
# The webhook tests speak Postmark; others check that no other ESP is mounted.
os.environ.setdefault("ESP_NAME", "postmark")

from marketing.settings import *  # noqa: E402,F403

# Tests drive HTTP directly; redirecting to HTTPS would hide every response behind a 301.
SECURE_SSL_REDIRECT = False
SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False
ALLOWED_HOSTS = ["testserver", "localhost", "127.0.0.1"]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# In memory, unless a test hands a worker process a real SMTP server through EMAIL_URL.
if not os.environ.get("EMAIL_URL"):
    EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
# Tests write inside a transaction that other connections cannot see: read snapshots on this one.
ML_READ_THREADS = 1
