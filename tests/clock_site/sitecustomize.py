"""Run at the start of every Python process of a test run (tests/clock.py puts this folder on PYTHONPATH).

It starts the process's clock on the run's time line when KAIROS_TEST_NOW is set, and does nothing else.
"""

from tests.clock import start_run_clock

start_run_clock()
