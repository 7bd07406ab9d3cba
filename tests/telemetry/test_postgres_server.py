"""The throwaway PostgreSQL server the fleet recorder and the architecture search test against."""

import psycopg


def test_local_postgres_accepts_sql(postgres_url):
    with psycopg.connect(postgres_url) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS t_probe (x int)")
        conn.execute("INSERT INTO t_probe VALUES (41), (1)")
        assert conn.execute("SELECT sum(x) FROM t_probe").fetchone()[0] == 42
