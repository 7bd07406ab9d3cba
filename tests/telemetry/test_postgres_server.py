"""The throwaway PostgreSQL server the fleet recorder and the architecture search test against."""

import psycopg


def test_local_postgres_accepts_sql(postgres_url):
    with psycopg.connect(postgres_url) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS t_probe (x int)")
        conn.execute("INSERT INTO t_probe VALUES (41), (1)")
        assert conn.execute("SELECT sum(x) FROM t_probe").fetchone()[0] == 42
        assert conn.execute("SHOW fsync").fetchone()[0] == "off"


def test_fsync_on_for_benchmarks():
    from sdk.fleet.postgres import LocalPostgres

    with LocalPostgres(fsync=True) as pg, psycopg.connect(pg.url) as conn:
        assert conn.execute("SHOW fsync").fetchone()[0] == "on"
