// End to end: Neon's own serverless driver in WebSocket mode (Pool, Client) against pgmux's /v2.
// Run by tests/integration/neon_driver_test.cpp with PGMUX_WS_PROXY (127.0.0.1:PORT/v2) and
// PGMUX_DATABASE_URL (postgresql://USER:PASSWORD@HOST/DATABASE) set; exits non-zero on the first failure.
// Every check runs twice: with the driver's default pipelineConnect "password" (startup message and a
// cleartext password in one write) and with pipelineConnect false (the server's SCRAM exchange).
import assert from 'node:assert/strict';
import { Client, Pool, neonConfig } from '@neondatabase/serverless';
import ws from 'ws';

const wsProxy = process.env.PGMUX_WS_PROXY;
const databaseUrl = process.env.PGMUX_DATABASE_URL;
if (!wsProxy || !databaseUrl) {
  console.error('set PGMUX_WS_PROXY and PGMUX_DATABASE_URL');
  process.exit(2);
}
neonConfig.webSocketConstructor = ws; // node 20 has no global WebSocket
neonConfig.wsProxy = wsProxy; // a string: the driver appends ?address=HOST:PORT, which pgmux ignores
// wss:// when PGMUX_WS_SECURE=1 (pgmux's http.tls; node trusts the test CA through NODE_EXTRA_CA_CERTS).
neonConfig.useSecureWebSocket = process.env.PGMUX_WS_SECURE === '1';

const checks = [];
function check(name, body) {
  checks.push({ name, body });
}

check('Pool.query binds parameters and parses values by type', async (pool) => {
  const tricky = `it's "quoted" ✓ 🐘 '); DROP TABLE x; --`;
  const { rows, rowCount, command } = await pool.query(
    'SELECT $1::int + 1 AS answer, $2::text AS echoed, $3::text AS nothing, $4::int8 AS big, $5::jsonb AS doc',
    [41, tricky, null, '9007199254740993', { a: [1, 2] }],
  );
  assert.equal(command, 'SELECT');
  assert.equal(rowCount, 1);
  assert.deepEqual(rows, [{ answer: 42, echoed: tricky, nothing: null, big: '9007199254740993', doc: { a: [1, 2] } }]);
});

check('a transaction on a pooled client commits with BEGIN/INSERT/COMMIT', async (pool, table) => {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    await client.query(`INSERT INTO ${table} VALUES ($1, $2)`, [1, 'one']);
    const inserted = await client.query(`INSERT INTO ${table} VALUES ($1, $2) RETURNING note`, [2, 'two']);
    assert.deepEqual(inserted.rows, [{ note: 'two' }]);
    await client.query('COMMIT');
  } finally {
    client.release();
  }
  const { rows } = await pool.query(`SELECT id, note FROM ${table} ORDER BY id`);
  assert.deepEqual(rows, [{ id: 1, note: 'one' }, { id: 2, note: 'two' }]);
});

check('a rolled-back transaction leaves nothing behind; errors carry their SQLSTATE', async (pool, table) => {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    await client.query(`INSERT INTO ${table} VALUES (3, 'three')`);
    await assert.rejects(client.query(`INSERT INTO ${table} VALUES (1, 'again')`), (err) => {
      assert.equal(err.code, '23505');
      assert.equal(err.constraint, `${table}_pkey`);
      return true;
    });
    await assert.rejects(client.query('SELECT 1'), (err) => err.code === '25P02');
    await client.query('ROLLBACK');
    assert.deepEqual((await client.query('SELECT 1 AS still')).rows, [{ still: 1 }]);
  } finally {
    client.release();
  }
  assert.deepEqual((await pool.query(`SELECT count(*)::int AS n FROM ${table} WHERE id = 3`)).rows, [{ n: 0 }]);
  await assert.rejects(pool.query('SELECT * FROM no_such_table_here'), (err) => {
    assert.equal(err.code, '42P01');
    assert.equal(err.position, '15');
    return true;
  });
});

check('parallel queries on the Pool each get their own answer', async (pool) => {
  const answers = await Promise.all(
    Array.from({ length: 8 }, (_, i) => pool.query('SELECT $1::int * 2 AS twice, pg_sleep(0.01)', [i])),
  );
  assert.deepEqual(
    answers.map((r) => r.rows[0].twice),
    Array.from({ length: 8 }, (_, i) => i * 2),
  );
});

check('a single Client connects, queries and ends', async () => {
  const client = new Client(databaseUrl);
  await client.connect();
  assert.deepEqual((await client.query('SELECT current_database() AS db')).rows, [{ db: new URL(databaseUrl).pathname.slice(1) }]);
  await client.end();
});

check('a wrong password is refused with 28P01', async () => {
  const url = new URL(databaseUrl);
  url.password = 'not-the-password';
  const client = new Client(url.toString());
  client.on('error', () => {});
  // With pipelineConnect "password", connect() resolves before the server has answered: the refusal
  // surfaces on the first query instead.
  await assert.rejects((async () => {
    await client.connect();
    await client.query('SELECT 1');
  })(), (err) => {
    assert.equal(err.code, '28P01');
    return true;
  });
});

let failed = 0;
let total = 0;
for (const mode of ['password', false]) {
  neonConfig.pipelineConnect = mode;
  const pool = new Pool({ connectionString: databaseUrl, max: 4 });
  const table = `neon_ws_e2e_${mode ? 'pipelined' : 'scram'}`;
  await pool.query(`DROP TABLE IF EXISTS ${table}`);
  await pool.query(`CREATE TABLE ${table} (id int PRIMARY KEY, note text)`);
  for (const { name, body } of checks) {
    total++;
    const label = `[pipelineConnect ${JSON.stringify(mode)}] ${name}`;
    try {
      await body(pool, table);
      console.log(`ok - ${label}`);
    } catch (err) {
      failed++;
      console.log(`not ok - ${label}\n  ${String(err && err.stack ? err.stack : err).replace(/\n/g, '\n  ')}`);
    }
  }
  await pool.query(`DROP TABLE IF EXISTS ${table}`);
  await pool.end();
}
console.log(`${total - failed}/${total} passed`);
process.exit(failed === 0 ? 0 : 1);
