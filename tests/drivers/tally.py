"""Settings from the environment and a tally of checks for the Python driver scripts; the tally decides the
exit code, so a wrong value anywhere fails the run."""

import asyncio
import os
import sys

URL = os.environ.get("PGMUX_URL", "")
CLIENTS = int(os.environ.get("DRIVER_CLIENTS", "20"))
ROUNDS = int(os.environ.get("DRIVER_ROUNDS", "30"))
DEADLINE_S = float(os.environ.get("DRIVER_DEADLINE_MS", "100000")) / 1000

# SQLSTATEs the scripts expect from Postgres.
DIVISION_BY_ZERO = "22012"
IN_FAILED_TRANSACTION = "25P02"


class Tally:
    def __init__(self, driver, sqlstate_of):
        self.driver = driver
        self.sqlstate_of = sqlstate_of  # the driver's way to read an exception's SQLSTATE
        self.checks = 0
        self.failures = []
        self.backends = {}  # client -> set of backend pids its statements ran on

    def fail(self, client, what, detail):
        if isinstance(detail, BaseException):
            detail = f"{self.sqlstate_of(detail) or type(detail).__name__} {detail}".strip()
        self.failures.append(f"client {client}: {what}: {detail}")

    def equal(self, client, what, actual, expected):
        self.checks += 1
        if actual != expected:
            self.fail(client, what, f"got {actual!r}, expected {expected!r}")

    def sqlstate(self, client, what, error, expected):
        """`error` is what the step raised, or None if it did not raise."""
        self.checks += 1
        if error is None:
            self.fail(client, what, f"succeeded, expected SQLSTATE {expected}")
        elif self.sqlstate_of(error) != expected:
            self.fail(client, what, error)

    def backend(self, client, pid):
        self.backends.setdefault(client, set()).add(pid)

    def report(self):
        """Prints what happened and returns the exit code."""
        every = set().union(*self.backends.values()) if self.backends else set()
        moved = sum(1 for pids in self.backends.values() if len(pids) > 1)
        for f in self.failures[:30]:
            print(f"FAIL {f}")
        if len(self.failures) > 30:
            print(f"... and {len(self.failures) - 30} more failures")
        print(f"summary driver={self.driver} clients={CLIENTS} checks={self.checks} "
              f"failures={len(self.failures)} backends={len(every)} clients_on_several_backends={moved}")
        return 0 if not self.failures and self.checks > 0 else 1


def run_clients(driver, sqlstate_of, client_body):
    """Runs `client_body(id, tally)` for every client at once, all in one event loop, and exits with the
    tally's verdict."""
    if not URL:
        print("PGMUX_URL is not set (e.g. postgres://app:app-secret@127.0.0.1:6432/app)")
        sys.exit(2)
    tally = Tally(driver, sqlstate_of)

    async def everyone():
        outcomes = await asyncio.gather(*(client_body(i, tally) for i in range(CLIENTS)),
                                        return_exceptions=True)
        for i, outcome in enumerate(outcomes):
            if isinstance(outcome, BaseException):
                tally.fail(i, "client stopped early", outcome)

    try:
        asyncio.run(asyncio.wait_for(everyone(), DEADLINE_S))
    except asyncio.TimeoutError:
        print(f"{driver}: clients still running after {DEADLINE_S:.0f} s")
        tally.report()
        sys.exit(2)
    sys.exit(tally.report())
