"""asyncpg (prepares every query as a named statement and caches it per connection), a connection per task
and more tasks than the pool has backends: every result must be the connection's own, and errors must reach
the connection that caused them. One statement is also prepared explicitly and reused across transactions."""

import asyncpg

from tally import DIVISION_BY_ZERO, IN_FAILED_TRANSACTION, ROUNDS, URL, run_clients

ECHO = "SELECT $1::int + 0 AS v, pg_backend_pid() AS pid"
LABEL = "SELECT $1::text || '/' || $2::int AS label"
DIVIDE = "SELECT $1::int / $2::int AS q"


def sqlstate_of(error):
    return getattr(error, "sqlstate", None)


class LeaveTransaction(Exception):
    """Raised to leave `conn.transaction()` with a ROLLBACK."""


async def client(cid, tally):
    conn = await asyncpg.connect(URL, timeout=10)
    sequence = iter(range(cid * 100000, (cid + 1) * 100000))  # every value sent is distinct
    divide_statement = await conn.prepare(DIVIDE)  # explicit, used for the rest of the session

    async def echo(what):
        v = next(sequence)
        got = await conn.fetch(ECHO, v)
        tally.equal(cid, what, got[0]["v"] if len(got) == 1 else got, v)
        if len(got) == 1:
            tally.backend(cid, got[0]["pid"])
        return got[0]["pid"] if got else None

    async def label(what):
        n = next(sequence)
        got = await conn.fetch(LABEL, f"client{cid}", n)
        tally.equal(cid, what, got[0]["label"] if len(got) == 1 else got, f"client{cid}/{n}")

    async def divide(what):
        n = next(sequence)
        tally.equal(cid, what, await divide_statement.fetchval(n * 7, 7), n)

    async def expect_error(what, run, sqlstate):
        error = None
        try:
            await run()
        except asyncpg.PostgresError as e:
            error = e
        tally.sqlstate(cid, what, error, sqlstate)

    async def divide_by_zero(what):
        await expect_error(what, lambda: divide_statement.fetchval(next(sequence), 0), DIVISION_BY_ZERO)

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
        try:
            async with conn.transaction():
                await echo(what)
                await divide_by_zero(what)
                await expect_error(f"{what}: the transaction is aborted",
                                   lambda: conn.fetch(ECHO, next(sequence)), IN_FAILED_TRANSACTION)
                raise LeaveTransaction()
        except LeaveTransaction:
            pass

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
                await step(f"{at}: division by zero", divide_by_zero)
                await step(f"{at}: the same statement after its error", divide)
            if r % 7 == 3:
                await step(f"{at}: error inside a transaction", error_in_transaction)
                await step(f"{at}: statements after the rolled-back transaction", after_rollback)
    finally:
        await conn.close(timeout=5)


if __name__ == "__main__":
    run_clients(f"asyncpg {asyncpg.__version__}", sqlstate_of, client)
