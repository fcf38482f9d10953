"""Root of the test run: registers the service fixtures (Redis, Celery worker, SMTP server)."""

pytest_plugins = ["tests.fixtures.services"]
