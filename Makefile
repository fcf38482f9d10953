# Kairos: `make demo` to see it work, `make test` to prove it, `make run` to use it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
DEMO_CUSTOMERS ?= 5000
# Development defaults for the embedded setup; production sets its own environment.
DEV_ENV := DEBUG=1
TEST_SQLITE := sqlite:///var/test.sqlite3
# The time-sensitive part of the suite runs again on a moved clock (tests/clock.py): tonight at 02:30
# UTC, inside quiet hours, and at 23:30 UTC on the last Sunday of March, when Europe's clocks go forward.
CLOCK_TESTS := tests/campaigns tests/ml
YEAR := $(shell date -u +%Y)
NIGHT := $(shell date -u +%F)T02:30:00Z
DST_NIGHT := $(shell date -u -d "$(YEAR)-03-31 -$$(date -u -d $(YEAR)-03-31 +%w) days" +%F)T23:30:00Z

.PHONY: demo test test-postgres test-sqlite test-clock run lint bench clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.installed: requirements.txt | $(BIN)/activate
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt | $(BIN)/activate
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(VENV)/.installed $@

demo: $(VENV)/.installed
	$(DEV_ENV) $(PY) manage.py migrate --verbosity 0
	$(DEV_ENV) $(PY) manage.py demo --customers $(DEMO_CUSTOMERS)

test: $(VENV)/.installed-dev
	bash .ci/services.sh
	$(MAKE) --no-print-directory test-postgres test-sqlite test-clock

test-postgres:
	$(BIN)/pytest --create-db -p no:cacheprovider

# The embedded default: the same suite on SQLite; PostgreSQL-only tests say why they skip.
test-sqlite:
	mkdir -p var
	DATABASE_URL=$(TEST_SQLITE) $(BIN)/pytest --create-db -p no:cacheprovider

# On PostgreSQL, with the real services, so the Celery workers' clocks move too.
test-clock:
	KAIROS_TEST_NOW=$(NIGHT) $(BIN)/pytest --create-db -p no:cacheprovider $(CLOCK_TESTS)
	KAIROS_TEST_NOW=$(DST_NIGHT) $(BIN)/pytest --create-db -p no:cacheprovider $(CLOCK_TESTS)

run: $(VENV)/.installed
	bash .ci/services.sh redis
	mkdir -p var
	$(DEV_ENV) $(PY) manage.py migrate --verbosity 0
	CELERY_BROKER_URL=$${CELERY_BROKER_URL:-redis://127.0.0.1:6379/0} $(DEV_ENV) bash -c '\
		trap "kill 0" EXIT; \
		$(BIN)/celery -A marketing worker --loglevel INFO & \
		$(BIN)/celery -A marketing beat --loglevel INFO --schedule var/celerybeat-schedule & \
		$(PY) manage.py runserver 127.0.0.1:8000'

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .

bench: $(VENV)/.installed-dev
	bash .ci/services.sh postgres
	$(PY) bench/import_orders.py --rows $${ROWS:-100000}
	$(PY) bench/segments.py --customers $${CUSTOMERS:-100000}
	$(PY) bench/enroll.py --customers $${CUSTOMERS:-100000}
	$(PY) bench/send.py --messages $${MESSAGES:-20000} --workers $${WORKERS:-2}
	$(PY) bench/trigger_latency.py --events $${EVENTS:-1000}
	$(PY) bench/forecast.py --categories $${CATEGORIES:-500} --weeks $${WEEKS:-156}
	$(PY) bench/classify.py --messages $${CLASSIFY_MESSAGES:-100000}

clean:
	rm -rf $(VENV) var db.sqlite3 outbox
