"""Root of the test run: starts the run's clock (KAIROS_TEST_NOW) and registers the service fixtures."""

from tests.clock import start_run_clock

# First, before any plugin or test module reads the time.
start_run_clock()

pytest_plugins = ["tests.fixtures.services", "tests.fixtures.intents"]
