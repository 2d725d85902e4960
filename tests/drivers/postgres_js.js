// postgres.js (prepare: true, its default) from many clients at once, one connection each, each query in its
// own transaction or an explicit one: every result must be the client's own, and errors must reach the client
// that caused them.
'use strict';

const postgres = require('postgres');
const {settings, runClients, DIVISION_BY_ZERO, IN_FAILED_TRANSACTION} = require('./tally');

async function client(id, tally) {
  // postgres.js silently re-prepares and retries a query once when Postgres says the statement does not exist
  // (its retryRoutines). A retry would hide exactly the failure this script is for, so every value a client
  // sends is distinct and a query sent twice counts as a failure.
  const sent = new Set();
  const debug = (connection, text, parameters) => {
    if (!parameters || parameters.length === 0) return;
    const key = text + JSON.stringify(parameters);
    if (sent.has(key)) tally.fail(id, 're-sent (its prepared statement went missing)', text);
    sent.add(key);
  };
  const sql = postgres(settings.url, {max: 1, prepare: true, connect_timeout: 10, idle_timeout: 0, debug});
  let sequence = 0;
  const unique = () => id * 100000 + sequence++;

  const echo = async (q, what) => {
    const v = unique();
    const rows = await q`SELECT ${v}::int + 0 AS v, pg_backend_pid() AS pid`;
    tally.equal(id, what, rows.length === 1 ? rows[0].v : rows, v);
    if (rows.length === 1) tally.backend(id, rows[0].pid);
    return rows[0] && rows[0].pid;
  };
  const label = async (q, what) => {
    const n = unique();
    const rows = await q`SELECT ${'client' + id}::text || '/' || ${n}::int AS label`;
    tally.equal(id, what, rows.length === 1 ? rows[0].label : rows, `client${id}/${n}`);
  };
  const divide = async (q, what) => {
    const n = unique();
    const rows = await q`SELECT ${n * 7}::int / ${7}::int AS q`;
    tally.equal(id, what, rows.length === 1 ? rows[0].q : rows, n);
  };
  const divideByZero = async (q, what) => {
    let error;
    await q`SELECT ${unique()}::int / ${0}::int AS q`.catch((e) => (error = e));
    tally.sqlstate(id, what, error, DIVISION_BY_ZERO);
  };
  const step = async (what, body) => {
    try {
      await body(what);
    } catch (e) {
      tally.fail(id, what, e);
    }
  };

  try {
    for (let round = 0; round < settings.rounds; round++) {
      const at = `round ${round}`;
      await step(`${at}: echo`, (what) => echo(sql, what));
      await step(`${at}: label`, (what) => label(sql, what));
      if (round % 4 === 0) {
        // Queries issued together are pipelined on the one connection.
        await step(`${at}: pipelined`, (what) =>
          Promise.all([echo(sql, what), label(sql, what), echo(sql, what)]));
      }
      if (round % 3 === 1) {
        await step(`${at}: statements inside BEGIN/COMMIT`, (what) =>
          sql.begin(async (tx) => {
            const first = await echo(tx, what);
            await label(tx, what);
            const last = await echo(tx, what);
            tally.equal(id, `${what}: one backend for the whole transaction`, last, first);
          }));
      }
      if (round % 5 === 2) {
        await step(`${at}: division by zero`, (what) => divideByZero(sql, what));
        await step(`${at}: the same statement after its error`, (what) => divide(sql, what));
      }
      if (round % 7 === 3) {
        await step(`${at}: error inside a transaction`, async (what) => {
          let outcome;
          await sql
            .begin(async (tx) => {
              await echo(tx, what);
              await divideByZero(tx, what);
              let error;
              await tx`SELECT ${unique()}::int + 0 AS v, pg_backend_pid() AS pid`.catch((e) => (error = e));
              tally.sqlstate(id, `${what}: the transaction is aborted`, error, IN_FAILED_TRANSACTION);
            })
            .catch((e) => (outcome = e));
          // postgres.js rolls back and rejects with the first error, even one the callback caught.
          tally.sqlstate(id, `${what}: begin() reports the first error`, outcome, DIVISION_BY_ZERO);
        });
        await step(`${at}: statements after the rolled-back transaction`, async (what) => {
          await divide(sql, what);
          await echo(sql, what);
        });
      }
    }
  } finally {
    await sql.end({timeout: 5}).catch(() => {});
  }
}

runClients('postgres.js', client);
