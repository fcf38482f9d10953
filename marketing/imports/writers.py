"""Writing parsed batches: one upsert path per database, with the same meaning on both.

Meaning: rows are matched on the schema's key; a blank cell never erases what is stored; JSON
fields are merged key by key; references to customers create them when missing, references to
orders and products must exist; an address on the suppression list stays opted out.
"""

import sys
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

from django.db import DEFAULT_DB_ALIAS, connections

from marketing.imports.batches import Batch, Outcome
from marketing.imports.orm_writer import OrmWriter
from marketing.imports.postgres_writer import PostgresWriter
from marketing.imports.schemas import Schema

WRITER_SWITCH_INTERVAL_S = 0.0005


def written_batches(schema: Schema, fields: list[str], batches: Iterable[Batch], *, dry_run: bool) -> Iterator[tuple[Batch, Outcome]]:
    """Write each batch with the writer that fits the database and yield it with its outcome, in order.

    On PostgreSQL outside a transaction, batches are written on a second thread with its own
    connection while the caller parses the next one: parsing and the database each keep a core busy.
    """
    connection = connections[DEFAULT_DB_ALIAS]
    if connection.vendor != "postgresql" or dry_run:
        writer = OrmWriter(schema, fields, dry_run=dry_run)
        for batch in batches:
            yield batch, writer.write(batch)
        return
    writer = PostgresWriter(schema, fields)
    if connection.in_atomic_block:
        # Inside the caller's transaction (tests, nested imports) a second connection would not see its rows.
        try:
            for batch in batches:
                yield batch, writer.write(batch)
        finally:
            writer.close()
        return
    # After each database reply the writing thread must win the GIL back from the parsing thread,
    # which by default keeps it for up to 5 ms: a tenth of that halved import times (measured).
    switch_interval = sys.getswitchinterval()
    sys.setswitchinterval(WRITER_SWITCH_INTERVAL_S)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="kairos-import") as pool:
        pending: tuple[Batch, Future] | None = None
        try:
            for batch in batches:
                future = pool.submit(writer.write, batch, writer.encode(batch))
                if pending is not None:
                    yield pending[0], pending[1].result()
                pending = (batch, future)
            if pending is not None:
                yield pending[0], pending[1].result()
        finally:
            pool.submit(_close_in_thread, writer).result()
            sys.setswitchinterval(switch_interval)


def _close_in_thread(writer: PostgresWriter) -> None:
    writer.close()
    connections[DEFAULT_DB_ALIAS].close()
