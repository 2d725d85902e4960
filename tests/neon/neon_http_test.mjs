// End to end: Neon's own serverless driver (HTTP mode of neon()) against pgmux's POST /sql.
// Run by tests/integration/neon_driver_test.cpp with PGMUX_HTTP_URL (http://127.0.0.1:PORT/sql) and
// PGMUX_DATABASE_URL (postgresql://USER:PASSWORD@HOST/DATABASE) set; exits non-zero on the first failure.
import assert from 'node:assert/strict';
import { neon, neonConfig } from '@neondatabase/serverless';

const endpoint = process.env.PGMUX_HTTP_URL;
const databaseUrl = process.env.PGMUX_DATABASE_URL;
if (!endpoint || !databaseUrl) {
  console.error('set PGMUX_HTTP_URL and PGMUX_DATABASE_URL');
  process.exit(2);
}
neonConfig.fetchEndpoint = endpoint;
const sql = neon(databaseUrl);

const checks = [];
function check(name, body) {
  checks.push({ name, body });
}

check('tagged templates bind their values as parameters, never as SQL text', async () => {
  const tricky = `it's "quoted" \\ ✓ 🐘 '); DROP TABLE x; --`;
  const rows = await sql`SELECT ${41}::int + 1 AS answer, ${tricky}::text AS echoed, ${null}::text AS nothing`;
  assert.deepEqual(rows, [{ answer: 42, echoed: tricky, nothing: null }]);
});

check('values come back typed by dataTypeID, as the driver parses them', async () => {
  const when = new Date('2024-02-29T13:14:15.123Z');
  const bytes = Buffer.from([0, 255, 16]);
  const [row] = await sql`SELECT ${'9007199254740993'}::int8 AS big, ${'12345.678'}::numeric AS exact,
      ${1.5}::float8 AS float, ${true}::bool AS yes, ${{ a: [1, 2] }}::jsonb AS doc,
      ${when}::timestamptz AS at, ${bytes} AS raw, ${[1, 2, 3]}::int[] AS list,
      ${'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'}::uuid AS id, '2024-02-29'::date AS day`;
  assert.equal(row.big, '9007199254740993');
  assert.equal(row.exact, '12345.678');
  assert.equal(row.float, 1.5);
  assert.equal(row.yes, true);
  assert.deepEqual(row.doc, { a: [1, 2] });
  assert.equal(row.at.getTime(), when.getTime());
  assert.deepEqual(row.raw, bytes);
  assert.deepEqual(row.list, [1, 2, 3]);
  assert.equal(row.id, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11');
  assert.ok(row.day instanceof Date);
});

check('sql.query with $n placeholders, fullResults and arrayMode', async () => {
  const rows = await sql.query('SELECT $1::int AS a, $2::text AS b', [7, 'seven']);
  assert.deepEqual(rows, [{ a: 7, b: 'seven' }]);
  const full = await sql.query('SELECT g AS n FROM generate_series(1, $1::int) g', [3], { fullResults: true });
  assert.equal(full.command, 'SELECT');
  assert.equal(full.rowCount, 3);
  assert.equal(full.fields[0].name, 'n');
  assert.equal(full.fields[0].dataTypeID, 23);
  assert.deepEqual(full.rows, [{ n: 1 }, { n: 2 }, { n: 3 }]);
  const arrays = await sql.query('SELECT 1 AS a, $1::text AS b', ['x'], { arrayMode: true });
  assert.deepEqual(arrays, [[1, 'x']]);
  const both = await sql.query('SELECT 1 AS a', [], { arrayMode: true, fullResults: true });
  assert.equal(both.rowAsArray, true);
  assert.deepEqual(both.rows, [[1]]);
});

check('sql.transaction commits every query together', async () => {
  await sql`DROP TABLE IF EXISTS neon_e2e`;
  await sql`CREATE TABLE neon_e2e (id int PRIMARY KEY, note text)`;
  const [first, second, count] = await sql.transaction([
    sql`INSERT INTO neon_e2e VALUES (${1}, ${'one'})`,
    sql`INSERT INTO neon_e2e VALUES (${2}, ${'two'}) RETURNING note`,
    sql`SELECT count(*)::int AS n FROM neon_e2e`,
  ]);
  assert.deepEqual(first, []);
  assert.deepEqual(second, [{ note: 'two' }]);
  assert.deepEqual(count, [{ n: 2 }]);
  assert.deepEqual(await sql`SELECT count(*)::int AS n FROM neon_e2e`, [{ n: 2 }]);
});

check('sql.transaction rolls everything back when one query fails, and the error carries its code', async () => {
  await assert.rejects(
    sql.transaction([sql`INSERT INTO neon_e2e VALUES (${3}, ${'three'})`, sql`INSERT INTO neon_e2e VALUES (${1}, ${'again'})`]),
    (err) => {
      assert.equal(err.code, '23505');
      assert.equal(err.constraint, 'neon_e2e_pkey');
      assert.equal(err.table, 'neon_e2e');
      assert.match(err.detail, /\(id\)=\(1\)/);
      return true;
    },
  );
  assert.deepEqual(await sql`SELECT count(*)::int AS n FROM neon_e2e WHERE id = 3`, [{ n: 0 }]);
});

check('sql.transaction passes isolation level and read-only to the transaction', async () => {
  const [[row]] = await sql.transaction(
    [sql`SELECT current_setting('transaction_isolation') AS iso, current_setting('transaction_read_only') AS ro`],
    { isolationLevel: 'Serializable', readOnly: true },
  );
  assert.deepEqual(row, { iso: 'serializable', ro: 'on' });
  await assert.rejects(sql.transaction([sql`INSERT INTO neon_e2e VALUES (9, 'x')`], { readOnly: true }), (err) => {
    assert.equal(err.code, '25006');
    return true;
  });
});

check('SQL errors are thrown with Postgres fields', async () => {
  await assert.rejects(sql`SELECT * FROM no_such_table_here`, (err) => {
    assert.equal(err.code, '42P01');
    assert.equal(err.severity, 'ERROR');
    assert.equal(err.position, '15');
    assert.match(err.message, /no_such_table_here/);
    return true;
  });
});

check('a wrong password is refused', async () => {
  const url = new URL(databaseUrl);
  url.password = 'not-the-password';
  await assert.rejects(neon(url.toString())`SELECT 1`, (err) => {
    assert.match(err.message, /401|password authentication failed/);
    return true;
  });
});

check('authToken sends a bearer token that stands for the password', async () => {
  const token = process.env.PGMUX_TOKEN;
  const tokenUrl = process.env.PGMUX_TOKEN_DATABASE_URL;
  if (!token || !tokenUrl) throw new Error('set PGMUX_TOKEN and PGMUX_TOKEN_DATABASE_URL');
  const withToken = neon(tokenUrl, { authToken: token });
  assert.deepEqual(await withToken`SELECT ${'ok'}::text AS fine`, [{ fine: 'ok' }]);
  await assert.rejects(neon(tokenUrl, { authToken: 'not-the-token' })`SELECT 1`);
});

let failed = 0;
for (const { name, body } of checks) {
  try {
    await body();
    console.log(`ok - ${name}`);
  } catch (err) {
    failed++;
    console.log(`not ok - ${name}\n  ${String(err && err.stack ? err.stack : err).replace(/\n/g, '\n  ')}`);
  }
}
console.log(`${checks.length - failed}/${checks.length} passed`);
process.exit(failed === 0 ? 0 : 1);
