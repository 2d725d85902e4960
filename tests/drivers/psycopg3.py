"""psycopg 3 with prepare_threshold=0 (every query prepared as a named statement from its first execution),
many connections at once in autocommit mode so each query is its own transaction unless inside an explicit
one: every result must be the connection's own, and errors must reach the connection that caused them."""

import psycopg

from tally import DIVISION_BY_ZERO, IN_FAILED_TRANSACTION, ROUNDS, URL, run_clients

ECHO = "SELECT %s::int + 0 AS v, pg_backend_pid() AS pid"
LABEL = "SELECT %s::text || '/' || %s::int AS label"
DIVIDE = "SELECT %s::int / %s::int AS q"


def sqlstate_of(error):
    return getattr(error, "sqlstate", None)


async def client(cid, tally):
    conn = await psycopg.AsyncConnection.connect(URL, prepare_threshold=0, autocommit=True,
                                                 connect_timeout=10)
    sequence = iter(range(cid * 100000, (cid + 1) * 100000))  # every value sent is distinct

    async def rows(sql, params):
        cur = await conn.execute(sql, params)
        return await cur.fetchall()

    async def echo(what):
        v = next(sequence)
        got = await rows(ECHO, (v,))
        tally.equal(cid, what, got[0][0] if len(got) == 1 else got, v)
        if len(got) == 1:
            tally.backend(cid, got[0][1])
        return got[0][1] if got else None

    async def label(what):
        n = next(sequence)
        got = await rows(LABEL, (f"client{cid}", n))
        tally.equal(cid, what, got[0][0] if len(got) == 1 else got, f"client{cid}/{n}")

    async def divide(what):
        n = next(sequence)
        got = await rows(DIVIDE, (n * 7, 7))
        tally.equal(cid, what, got[0][0] if len(got) == 1 else got, n)

    async def expect_error(what, sql, params, sqlstate):
        error = None
        try:
            await rows(sql, params)
        except psycopg.Error as e:
            error = e
        tally.sqlstate(cid, what, error, sqlstate)

    async def step(what, body):
        try:
            await body(what)
        except Exception as e:  # a failure of one step is counted; the client goes on
            tally.fail(cid, what, e)

    async def in_transaction(what):
        async with conn.transaction():
            first = await echo(what)
            await label(what)
            last = await echo(what)
            tally.equal(cid, f"{what}: one backend for the whole transaction", last, first)

    async def error_in_transaction(what):
        async with conn.transaction():
            await echo(what)
            await expect_error(what, DIVIDE, (next(sequence), 0), DIVISION_BY_ZERO)
            await expect_error(f"{what}: the transaction is aborted", ECHO, (next(sequence),),
                               IN_FAILED_TRANSACTION)
            raise psycopg.Rollback()  # leaves the block with ROLLBACK, which psycopg swallows

    async def after_rollback(what):
        await divide(what)
        await echo(what)

    try:
        for r in range(ROUNDS):
            at = f"round {r}"
            await step(f"{at}: echo", echo)
            await step(f"{at}: label", label)
            if r % 3 == 1:
                await step(f"{at}: statements inside BEGIN/COMMIT", in_transaction)
            if r % 5 == 2:
                await step(f"{at}: division by zero",
                           lambda what: expect_error(what, DIVIDE, (next(sequence), 0), DIVISION_BY_ZERO))
                await step(f"{at}: the same statement after its error", divide)
            if r % 7 == 3:
                await step(f"{at}: error inside a transaction", error_in_transaction)
                await step(f"{at}: statements after the rolled-back transaction", after_rollback)
    finally:
        await conn.close()


if __name__ == "__main__":
    run_clients(f"psycopg {psycopg.__version__}", sqlstate_of, client)
