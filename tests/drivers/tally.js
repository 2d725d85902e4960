// Settings from the environment and a tally of checks for the Node driver scripts; the tally decides the
// exit code, so a wrong value anywhere fails the run.
'use strict';

const settings = {
  url: process.env.PGMUX_URL,
  clients: Number(process.env.DRIVER_CLIENTS || 20),
  rounds: Number(process.env.DRIVER_ROUNDS || 30),
  deadlineMs: Number(process.env.DRIVER_DEADLINE_MS || 100000),
};

// SQLSTATEs the scripts expect from Postgres.
const DIVISION_BY_ZERO = '22012';
const IN_FAILED_TRANSACTION = '25P02';

class Tally {
  constructor(driver) {
    this.driver = driver;
    this.checks = 0;
    this.failures = [];
    this.backends = new Map();  // client -> Set of backend pids its statements ran on
  }

  fail(client, what, detail) {
    const text = detail instanceof Error ? `${detail.code || ''} ${detail.message}`.trim() : String(detail);
    this.failures.push(`client ${client}: ${what}: ${text}`);
  }

  equal(client, what, actual, expected) {
    this.checks++;
    if (actual !== expected)
      this.fail(client, what, `got ${JSON.stringify(actual)}, expected ${JSON.stringify(expected)}`);
  }

  // `error` is what the step threw (undefined if it did not throw).
  sqlstate(client, what, error, expected) {
    this.checks++;
    if (!error) this.fail(client, what, `succeeded, expected SQLSTATE ${expected}`);
    else if (error.code !== expected) this.fail(client, what, error);
  }

  backend(client, pid) {
    if (!this.backends.has(client)) this.backends.set(client, new Set());
    this.backends.get(client).add(pid);
  }

  // Prints what happened and returns the exit code.
  report() {
    const all = new Set();
    let moved = 0;
    for (const pids of this.backends.values()) {
      pids.forEach((p) => all.add(p));
      if (pids.size > 1) moved++;
    }
    for (const f of this.failures.slice(0, 30)) console.log(`FAIL ${f}`);
    if (this.failures.length > 30) console.log(`... and ${this.failures.length - 30} more failures`);
    console.log(`summary driver=${this.driver} clients=${settings.clients} checks=${this.checks} ` +
                `failures=${this.failures.length} backends=${all.size} clients_on_several_backends=${moved}`);
    return this.failures.length === 0 && this.checks > 0 ? 0 : 1;
  }
}

// Runs `clientBody(id, tally)` for every client at once and exits with the tally's verdict.
async function runClients(driver, clientBody) {
  if (!settings.url) {
    console.log('PGMUX_URL is not set (e.g. postgres://app:app-secret@127.0.0.1:6432/app)');
    process.exit(2);
  }
  const tally = new Tally(driver);
  const watchdog = setTimeout(() => {
    console.log(`${driver}: clients still running after ${settings.deadlineMs} ms`);
    tally.report();
    process.exit(2);
  }, settings.deadlineMs);
  const ids = Array.from({length: settings.clients}, (_, i) => i);
  const outcomes = await Promise.allSettled(ids.map((id) => clientBody(id, tally)));
  outcomes.forEach((o, id) => o.status === 'rejected' && tally.fail(id, 'client stopped early', o.reason));
  clearTimeout(watchdog);
  process.exitCode = tally.report();
}

module.exports = {settings, Tally, runClients, DIVISION_BY_ZERO, IN_FAILED_TRANSACTION};
