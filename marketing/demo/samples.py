"""Sample import files for the demo, written the way shops really export them.

Each file carries a few of the faults real exports have, so the demo shows the importer
reporting them: a byte-order mark, semicolons, CRLF line endings, a bad address, a bad date,
an empty key, a duplicate row. Pure: a seed in, files out; no Django.
"""

import csv
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from random import Random

SIGNUPS = 200
LOG_ORDERS = 400


@dataclass(frozen=True)
class SampleFiles:
    signups: Path  # customers: newsletter sign-ups from a form tool, ';'-separated, BOM, CRLF
    order_log: Path  # orders: a marketplace transaction log with no order ids, aligned by spaces
    signup_faults: int  # rows the importer must reject in `signups`
    log_faults: int  # rows the importer must reject in `order_log`


def write_samples(folder: Path, seed: int, today: date, existing_customers: list[str]) -> SampleFiles:
    """Write the two sample files into `folder` and say how many faulty rows each holds."""
    rng = Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    signups = folder / "newsletter-signups.csv"
    with open(signups, "w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle, delimiter=";", lineterminator="\r\n")
        writer.writerow(["Customer ID", "E-mail", "First name", "Country", "Newsletter"])
        for number in range(1, SIGNUPS + 1):
            writer.writerow([f"N{number:06d}", f"reader{number}@example.org", f"Reader {number}", rng.choice(["DE", "FR", "GB", "US"]), "yes"])
        writer.writerow(["N900001", "not-an-address", "Typo", "DE", "yes"])
        writer.writerow(["", "nobody@example.org", "No id", "FR", "yes"])
        writer.writerow(["N000001", "reader1@example.org", "Reader 1 again", "DE", "yes"])

    order_log = folder / "marketplace-orders.txt"
    with open(order_log, "w", encoding="utf-8") as handle:
        handle.write(f"{'buyer':<12}{'date':<12}{'amount':>10}\n")
        for _ in range(LOG_ORDERS):
            buyer = rng.choice(existing_customers)
            day = today - timedelta(days=rng.randrange(1, 30))
            amount = rng.randrange(900, 25_000) / 100
            handle.write(f"{buyer:<12}{day:%Y%m%d}    {amount:>10.2f}\n")
        handle.write(f"{existing_customers[0]:<12}{'20241350':<12}{'19.99':>10}\n")
        handle.write(f"{existing_customers[1]:<12}{today:%Y%m%d}    {'12,5O':>10}\n")
    return SampleFiles(signups=signups, order_log=order_log, signup_faults=3, log_faults=2)
