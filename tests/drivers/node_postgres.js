// node-postgres named statements ({name, text, values}) from many clients at once, each in its own
// transactions: every result must be the client's own, and errors must reach the client that caused them.
'use strict';

const {Client} = require('pg');
const {settings, runClients, DIVISION_BY_ZERO, IN_FAILED_TRANSACTION} = require('./tally');

const ECHO = 'SELECT $1::int + 0 AS v, pg_backend_pid() AS pid';
const LABEL = "SELECT $1::text || '/' || $2::int AS label";
const DIVIDE = 'SELECT $1::int / $2::int AS q';

async function client(id, tally) {
  const conn = new Client({connectionString: settings.url, connectionTimeoutMillis: 10000});
  await conn.connect();
  let sequence = 0;
  // Every value a client sends is distinct, so a result carrying another query's value cannot pass.
  const unique = () => id * 100000 + sequence++;

  const echo = async (what) => {
    const v = unique();
    const r = await conn.query({name: 'echo', text: ECHO, values: [v]});
    tally.equal(id, what, r.rows.length === 1 ? r.rows[0].v : r.rows, v);
    if (r.rows.length === 1) tally.backend(id, r.rows[0].pid);
    return r.rows[0] && r.rows[0].pid;
  };
  const label = async (what) => {
    const n = unique();
    const r = await conn.query({name: 'label', text: LABEL, values: [`client${id}`, n]});
    tally.equal(id, what, r.rows.length === 1 ? r.rows[0].label : r.rows, `client${id}/${n}`);
  };
  const divide = async (what) => {
    const n = unique();
    const r = await conn.query({name: 'divide', text: DIVIDE, values: [n * 7, 7]});
    tally.equal(id, what, r.rows.length === 1 ? r.rows[0].q : r.rows, n);
  };
  const divideByZero = async (what) => {
    let error;
    await conn.query({name: 'divide', text: DIVIDE, values: [unique(), 0]}).catch((e) => (error = e));
    tally.sqlstate(id, what, error, DIVISION_BY_ZERO);
  };
  const step = async (what, body) => {
    try {
      await body(what);
    } catch (e) {
      tally.fail(id, what, e);
      await conn.query('ROLLBACK').catch(() => {});  // a step that failed inside BEGIN leaves it open
    }
  };

  try {
    for (let round = 0; round < settings.rounds; round++) {
      const at = `round ${round}`;
      await step(`${at}: echo`, echo);
      await step(`${at}: label`, label);
      if (round % 3 === 1) {
        await step(`${at}: statements inside BEGIN/COMMIT`, async (what) => {
          await conn.query('BEGIN');
          const first = await echo(what);
          await label(what);
          const last = await echo(what);
          tally.equal(id, `${what}: one backend for the whole transaction`, last, first);
          await conn.query('COMMIT');
        });
      }
      if (round % 5 === 2) {
        await step(`${at}: division by zero`, divideByZero);
        await step(`${at}: the same statement after its error`, divide);
      }
      if (round % 7 === 3) {
        await step(`${at}: error inside a transaction`, async (what) => {
          await conn.query('BEGIN');
          await echo(what);
          await divideByZero(what);
          let error;
          await conn.query({name: 'echo', text: ECHO, values: [unique()]}).catch((e) => (error = e));
          tally.sqlstate(id, `${what}: the transaction is aborted`, error, IN_FAILED_TRANSACTION);
          await conn.query('ROLLBACK');
        });
        await step(`${at}: statements after the rolled-back transaction`, async (what) => {
          await divide(what);
          await echo(what);
        });
      }
    }
  } finally {
    await conn.end().catch(() => {});
  }
}

runClients('node-postgres', client);
