"""The active forecast as CSV, for spreadsheets, stock planning and ad platforms.

One row per series and week: `category` (`__all__` for the whole shop), `week_start` (a Monday in
the shop's time zone), the units forecast, the revenue forecast and the units' prediction interval.
Category names come from the shop's catalogue, so they pass the spreadsheet formula guard; numbers
are formatted here and never need it.
"""

from typing import TextIO

from marketing.spreadsheets import csv_writer, neutralise_formula
from ml.forecast import ALL_SERIES
from ml.models import Forecast, ModelVersion

FORECAST_COLUMNS = ["category", "week_start", "units", "revenue", "units_low", "units_high"]


def forecast_rows(version: ModelVersion):
    """Return the version's forecast weeks, the whole shop first, then categories by name, each by week."""
    rows = Forecast.objects.filter(model_version=version).values_list(
        "category", "week_start", "units", "revenue", "units_low", "units_high"
    )
    return sorted(rows, key=lambda row: (row[0] != ALL_SERIES, row[0], row[1]))


def write_forecast_csv(handle: TextIO, version: ModelVersion) -> int:
    """Write the version's forecast as CSV with a header row; return the number of weeks written."""
    writer = csv_writer(handle, lineterminator="\n")
    writer.writerow(FORECAST_COLUMNS)
    written = 0
    for category, week_start, units, revenue, low, high in forecast_rows(version):
        writer.writerow(
            [
                neutralise_formula(category),
                week_start.isoformat(),
                f"{units:.2f}",
                f"{revenue:.2f}",
                f"{low:.2f}",
                f"{high:.2f}",
            ]
        )
        written += 1
    return written
