"""Benchmark: classify N customer messages through `manage.py classify_messages`, end to end.

    python bench/classify.py --messages 100000

Trains and activates an intent model (`train_intents --activate`) in a fresh SQLite database under
var/bench/, writes N messages to a CSV file (the held-out messages and the labelled set's, each with
fresh order numbers, a fifth of them joined into longer mails, one in twenty in another language),
then times one `python manage.py classify_messages IN.csv --output OUT.csv` process: Django's start,
loading the model from the database, reading, classifying and writing. The output is checked: the
exact header and one row per message, in order. The last line printed is one JSON object.
"""

import argparse
import csv
import json
import os
import random
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "var" / "bench" / "classify"
OTHER_LANGUAGES = [
    "Hallo, wo bleibt meine Bestellung {n}? Ich warte seit zwei Wochen.",
    "Bonjour, je voudrais retourner ma commande {n}, merci.",
    "Hola, ¿cuándo llega mi pedido {n}?",
    "注文番号{n}の商品はいつ届きますか？",
    "Здравствуйте, где мой заказ {n}?",
]


def write_messages(path: Path, count: int, seed: int) -> float:
    """Write `count` messages to a CSV file with a text column; return their mean length in characters."""
    rng = random.Random(seed)
    sources = []
    for name in ("intents_heldout.csv", "intents.csv"):
        with (ROOT / "ml" / "data" / name).open(encoding="utf-8", newline="") as handle:
            sources.extend(row["text"] for row in csv.DictReader(handle))
    total = 0
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text"])
        for _ in range(count):
            roll = rng.random()
            number = str(rng.randrange(10_000, 99_999_999))
            if roll < 0.05:
                text = rng.choice(OTHER_LANGUAGES).format(n=number)
            elif roll < 0.25:
                text = "\n\n".join(rng.choice(sources) for _ in range(3))
            else:
                text = rng.choice(sources)
                chinese = any("\u4e00" <= char <= "\u9fff" for char in text)
                text += rng.choice(
                    ["", f" 订单号{number}", f" #{number}"] if chinese else ["", f" Order {number}.", f" #{number}"]
                )
            total += len(text)
            writer.writerow([text])
    return total / max(count, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    WORK.mkdir(parents=True, exist_ok=True)
    database = WORK / "bench.sqlite3"
    database.unlink(missing_ok=True)
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{database}",
        "SECRET_KEY": os.environ.get("SECRET_KEY", "kairos-benchmark-only-secret-key-0123456789abcdefghijklmnop"),
        "DJANGO_SETTINGS_MODULE": "marketing.settings",
        "LOG_LEVEL": "WARNING",
    }
    manage = [sys.executable, str(ROOT / "manage.py")]
    subprocess.run([*manage, "migrate", "--verbosity", "0"], cwd=ROOT, env=env, check=True)
    started = time.perf_counter()
    subprocess.run([*manage, "train_intents", "--activate"], cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
    train_s = time.perf_counter() - started

    source, output = WORK / "messages.csv", WORK / "classified.csv"
    mean_chars = write_messages(source, args.messages, args.seed)
    started = time.perf_counter()
    subprocess.run([*manage, "classify_messages", str(source), "--output", str(output)], cwd=ROOT, env=env, check=True)
    total_s = time.perf_counter() - started

    with output.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        rows = list(reader)
    if header != ["text", "language", "intent", "sentiment", "confidence"] or len(rows) != args.messages:
        raise SystemExit(f"classify_messages wrote header {header} and {len(rows)} rows for {args.messages} messages")
    print(f"classified {args.messages:,} messages in {total_s:.1f}s (training took {train_s:.1f}s)", file=sys.stderr)
    print(
        json.dumps(
            {
                "messages": args.messages,
                "total_s": round(total_s, 3),
                "messages_per_s": round(args.messages / total_s, 1),
                "mean_chars": round(mean_chars, 1),
                "train_s": round(train_s, 1),
                "languages": dict(Counter(row[1] for row in rows)),
                "intents": dict(Counter(row[2] for row in rows)),
            }
        )
    )


if __name__ == "__main__":
    main()
