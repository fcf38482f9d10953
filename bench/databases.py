"""The benchmarks' own PostgreSQL databases: dropped and created afresh at the start of each run."""


def recreate_database(server: str, name: str) -> str:
    """Drop the named database if it exists, create it empty, and return its URL on `server`."""
    import psycopg

    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")
    return f"{server}/{name}"
