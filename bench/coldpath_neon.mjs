// Cold-path client for bench/coldpath.sh: Neon's serverless driver over WebSocket (Pool, pipelineConnect
// "password"), a new Pool per login, timed to the first row of SELECT 1. Prints the same line as
// coldpath_client.py: status t0_ms tdelay_ms round_trips cpu_ms wall_ms note (tab-separated); t0 and tdelay
// are the fastest of REPS logins, cpu and wall medians.
// Arguments: PORT DELAY_MS REPS USER PASSWORD DBNAME SECURE(0|1). NEON_DIR is tests/neon, whose node_modules
// (npm ci there) hold the driver; for wss:// set NODE_EXTRA_CA_CERTS to the CA of pgmux's certificate.
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';

// The packages live in tests/neon, not next to this file: resolve them from there.
const fromNeonDir = createRequire(`${process.env.NEON_DIR}/package.json`);
// resolve() picks the CommonJS entry, whose exports arrive as the module's default.
const load = async (name) => (await import(pathToFileURL(fromNeonDir.resolve(name)).href)).default;
const { Pool, neonConfig } = await load('@neondatabase/serverless');
const ws = await load('ws');

const [port, delayMs, reps, user, password, dbname, secure] = process.argv.slice(2);
neonConfig.webSocketConstructor = ws;
neonConfig.useSecureWebSocket = secure === '1';
neonConfig.pipelineConnect = 'password';

// The delaying relays (0 and DELAY_MS) are coldpath_client.py --relay-only in a process of its own: timers in
// this event loop would fire late behind the driver's JavaScript and its TLS handshake, adding to every chunk.
function startRelays(delay) {
  const relay = spawn(process.env.PYTHON || 'python3', [
    fileURLToPath(new URL('coldpath_client.py', import.meta.url)),
    '--relay-only', '--port', port, '--delay-ms', String(delay),
  ], { stdio: ['pipe', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    let out = '';
    relay.stdout.on('data', (chunk) => {
      out += chunk;
      if (out.includes('\n')) {
        const [p0, pd] = out.trim().split(' ').map(Number);
        resolve({ relay, p0, pd });
      }
    });
    relay.on('exit', (code) => reject(new Error(`relay exited with ${code}`)));
  });
}

// One login through `viaPort`: wall ms and this process's CPU ms (user + system).
async function login(viaPort) {
  // localhost, not 127.0.0.1: the certificate names localhost, and the driver verifies it under wss://
  neonConfig.wsProxy = `localhost:${viaPort}/v2`;
  const w0 = performance.now();
  const c0 = process.cpuUsage();
  const pool = new Pool({ connectionString: `postgresql://${user}:${password}@localhost/${dbname}` });
  const { rows } = await pool.query('SELECT 1 AS one');
  const cpu = process.cpuUsage(c0);
  const wall = performance.now() - w0;
  await pool.end();
  if (rows.length !== 1 || rows[0].one !== 1) throw new Error(`unexpected rows ${JSON.stringify(rows)}`);
  return { wall, cpu: (cpu.user + cpu.system) / 1000 };
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

try {
  const d = Number(delayMs);
  const { relay, p0, pd } = await startRelays(d);
  await login(Number(port)); // outside every figure: the pool's backend and the JIT warm for all
  const t0 = [], td = [], cpu = [], wall = [];
  for (let i = 0; i < Number(reps); i++) {
    t0.push((await login(p0)).wall);
    td.push((await login(pd)).wall);
    const direct = await login(Number(port));
    cpu.push(direct.cpu);
    wall.push(direct.wall);
  }
  // the fastest login: scheduling and garbage collection only ever add time
  const m0 = Math.min(...t0), md = Math.min(...td);
  // +1: the TCP handshake, which the relay does not delay
  const rt = (md - m0) / (2 * d) + 1;
  relay.stdin.end(); // the relay process ends when its standard input closes
  console.log(`ok\t${m0.toFixed(2)}\t${md.toFixed(2)}\t${rt.toFixed(2)}\t${median(cpu).toFixed(3)}\t${median(wall).toFixed(2)}\t`);
  process.exit(0);
} catch (e) {
  console.log(`error\tNA\tNA\tNA\tNA\tNA\t${String(e && e.message ? e.message : e).slice(0, 200)}`);
  process.exit(0);
}
