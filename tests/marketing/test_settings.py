"""Settings come from the environment, with typed helpers that refuse bad values by name."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from marketing import settings as project

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION_ENV = {
    "SECRET_KEY": "p7$kQ2v!xR9m#Lw4zT8n@Yb6cH1fJ3dG5sA0eU-Vq_Zr+iO^lK&oP*",
    "DEBUG": "0",
    "ALLOWED_HOSTS": "shop.example.com",
    "DATABASE_URL": "postgres://kairos:s3cret@db.internal:5433/kairos",
    "SUPPRESSION_HMAC_KEY": "a-long-random-key-that-never-changes",
    "PUBLIC_BASE_URL": "https://mail.shop.example.com",
    "ESP_NAME": "postmark",
    "ANYMAIL_WEBHOOK_SECRET": "kairos-esp:Vt3r9Qm2LwX8",
}


def run_manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    clean = {key: value for key, value in os.environ.items() if key not in {"DEBUG", "SECRET_KEY", "DATABASE_URL", "DJANGO_SETTINGS_MODULE", "ESP_NAME", "ANYMAIL_WEBHOOK_SECRET"}}
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env={**clean, **env}, capture_output=True, text=True, timeout=120
    )


def test_check_deploy_with_production_settings_prints_no_warnings():
    result = run_manage("check", "--deploy", env=PRODUCTION_ENV)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "System check identified no issues (0 silenced)."
    assert "WARNING" not in result.stderr


def test_check_deploy_warns_when_links_would_not_be_https():
    result = run_manage("check", "--deploy", env={**PRODUCTION_ENV, "PUBLIC_BASE_URL": "http://mail.shop.example.com"})

    assert "campaigns.W001" in result.stderr + result.stdout
    assert "PUBLIC_BASE_URL='http://mail.shop.example.com' is not an https:// address." in result.stderr + result.stdout


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"ANYMAIL_WEBHOOK_SECRET": ""}, "campaigns.E001"),
        ({"ESP_NAME": "carrier-pigeon"}, "campaigns.E002"),
    ],
)
def test_check_deploy_fails_when_esp_webhooks_would_be_open(env, message):
    result = run_manage("check", "--deploy", env={**PRODUCTION_ENV, **env})

    assert result.returncode != 0
    assert message in result.stderr


def test_the_program_refuses_to_start_without_a_secret_key_when_debug_is_off():
    env = {key: value for key, value in PRODUCTION_ENV.items() if key != "SECRET_KEY"}

    result = run_manage("check", env=env)

    assert result.returncode != 0
    assert "SECRET_KEY is not set. Set it, or set DEBUG=1 for a development machine." in result.stderr


def test_without_a_broker_the_program_says_once_that_tasks_run_in_process():
    result = run_manage("check", env={"DEBUG": "1"})

    assert result.returncode == 0, result.stderr
    assert result.stderr.count("CELERY_BROKER_URL is not set: tasks run in-process") == 1


@pytest.mark.parametrize("command", [("help",), ("migrate", "--verbosity", "0"), ("check", "--database", "default")])
def test_commands_on_the_embedded_sqlite_default_print_no_system_check_warning(command, tmp_path):
    result = run_manage(*command, env={"DEBUG": "1", "DATABASE_URL": f"sqlite:///{tmp_path / 'kairos.sqlite3'}"})

    assert result.returncode == 0, result.stderr
    assert "W040" not in result.stdout + result.stderr
    assert "System check identified some issues" not in result.stdout + result.stderr


@pytest.mark.postgres_only
def test_the_orders_index_covers_status_and_total_on_postgresql(db):
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'order_customer_placed'")
        [(definition,)] = cursor.fetchall()

    assert definition.endswith('(customer_id, placed_at) INCLUDE (status, total)')


def test_sqlite_url_defaults_to_a_file_in_the_project_folder():
    database = project.database_from_url("sqlite:///db.sqlite3")

    assert database["ENGINE"] == "django.db.backends.sqlite3"
    assert database["NAME"] == str(project.BASE_DIR / "db.sqlite3")


def test_postgres_url_is_split_into_its_parts():
    database = project.database_from_url("postgres://kairos:p%40ss@db.internal:5433/shop?sslmode=require")

    assert {key: database[key] for key in ("ENGINE", "NAME", "USER", "PASSWORD", "HOST", "PORT", "OPTIONS")} == {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "shop",
        "USER": "kairos",
        "PASSWORD": "p@ss",
        "HOST": "db.internal",
        "PORT": "5433",
        "OPTIONS": {"sslmode": "require"},
    }


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://x@y/z", "DATABASE_URL scheme 'mysql' is not supported"),
        ("sqlite://", "DATABASE_URL for SQLite needs a file name"),
    ],
)
def test_unsupported_database_urls_are_refused_by_name(url, message):
    with pytest.raises(ImproperlyConfigured, match=message):
        project.database_from_url(url)


def test_email_url_configures_smtp_with_starttls():
    assert project.email_from_url("smtp://mailer:pw@smtp.example.com:587?tls=1") == {
        "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "EMAIL_HOST": "smtp.example.com",
        "EMAIL_PORT": 587,
        "EMAIL_HOST_USER": "mailer",
        "EMAIL_HOST_PASSWORD": "pw",
        "EMAIL_USE_SSL": False,
        "EMAIL_USE_TLS": True,
    }


def test_email_url_with_smtps_uses_implicit_tls_on_465():
    settings = project.email_from_url("smtps://smtp.example.com")

    assert (settings["EMAIL_PORT"], settings["EMAIL_USE_SSL"], settings["EMAIL_USE_TLS"]) == (465, True, False)


def test_default_email_backend_writes_to_the_outbox_folder():
    result = run_manage("shell", "--verbosity", "0", "-c", "from django.conf import settings; print(settings.EMAIL_BACKEND, settings.EMAIL_FILE_PATH)", env={"DEBUG": "1"})

    assert result.stdout.split() == ["django.core.mail.backends.filebased.EmailBackend", str(ROOT / "outbox")]


@pytest.mark.parametrize(
    ("name", "value", "helper", "message"),
    [
        ("KAIROS_FLAG", "maybe", lambda: project.env_bool("KAIROS_FLAG"), "KAIROS_FLAG='maybe' is not a boolean"),
        ("KAIROS_COUNT", "ten", lambda: project.env_int("KAIROS_COUNT", 1), "KAIROS_COUNT='ten' is not a whole number"),
    ],
)
def test_typed_helpers_name_the_variable_they_refuse(monkeypatch, name, value, helper, message):
    monkeypatch.setenv(name, value)

    with pytest.raises(ImproperlyConfigured, match=message):
        helper()


def test_an_unknown_time_zone_is_refused_at_start():
    with pytest.raises(ImproperlyConfigured, match="TIME_ZONE='Mars/Olympus' is not an IANA time zone"):
        project.time_zone("Mars/Olympus")


def test_timestamps_are_stored_in_utc(settings):
    assert settings.USE_TZ is True
    assert settings.TIME_ZONE == "UTC"


def _development_key(tmp_path, name: str) -> str:
    script = "from django.conf import settings; print(settings.SECRET_KEY); print(settings.WEBHOOK_SIGNING_KEY)"
    result = run_manage(
        "shell", "-c", script,
        env={"DEBUG": "1", "DEVELOPMENT_SECRET_KEY_FILE": str(tmp_path / name), "DATABASE_URL": f"sqlite:///{tmp_path / 'k.sqlite3'}"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout.split()[-2:]


def test_a_development_machine_gets_its_own_key_kept_in_a_private_file(tmp_path):
    first, webhook_key = _development_key(tmp_path, "secret_key")
    again, _ = _development_key(tmp_path, "secret_key")
    other, _ = _development_key(tmp_path, "another_checkout_key")

    assert first == again
    assert first != other
    assert len(first) >= 50
    assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600
    assert first not in (ROOT / "marketing" / "settings.py").read_text()
    # Keys for other purposes are derived with a salt, never the raw key or a string holding it.
    assert first not in webhook_key


def test_the_development_key_file_is_ignored_by_git():
    result = subprocess.run(["git", "check-ignore", "var/secret_key"], cwd=ROOT, capture_output=True, text=True)

    assert result.stdout.strip() == "var/secret_key"
