"""Cold-path client for bench/coldpath.sh: times one kind of login to the first row of SELECT 1.

For one path against one target it prints a single tab-separated line:
    status  t0_ms  tdelay_ms  round_trips  cpu_ms  wall_ms  note
status is "ok" or "unsupported" (the target refused the handshake or the login method; note says how).
Round trips come from a relay on loopback that holds every chunk DELAY ms in each direction:
(t(DELAY) - t(0)) / (2 x DELAY), with t(0) measured through the same relay so its own cost cancels out, and
t the fastest of REPS logins (scheduling on a busy machine only ever adds time, so the minimum is the cleanest),
plus 1 for the TCP handshake, which the relay answers itself and so does not delay (not for http-warm,
which reuses a keep-alive connection).
Client CPU is this process's own CPU time (user + system) per login, measured without the relay (median), and
wall_ms that login's median time to the first row (no relay).
"""

import argparse
import collections
import http.client
import json
import multiprocessing
import socket
import ssl
import statistics
import struct
import sys
import threading
import time

QUERY = "SELECT 1"


class Unsupported(Exception):
    """The target does not offer this path (refused TLS, asked for SCRAM where cleartext was pipelined...)."""


# ---- the delaying relay --------------------------------------------------------------------------------------------
class DelayRelay:
    """Forwards loopback TCP connections to (host, port), holding each chunk `delay` seconds in each direction.

    Chunks keep their order and are not serialised behind each other's delay: a burst of writes arrives as one
    burst, DELAY later, as it would over a longer wire.
    """

    def __init__(self, host, port, delay):
        self.target = (host, port)
        self.delay = delay
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            for s in (client, server):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            # Either direction closes both sockets once it ends, so neither side waits on a half-open relay.
            done = threading.Event()
            for src, dst in ((client, server), (server, client)):
                pending = collections.deque()
                ready = threading.Condition()
                threading.Thread(target=self._read, args=(src, pending, ready), daemon=True).start()
                threading.Thread(target=self._write, args=(dst, pending, ready, done, (client, server)),
                                 daemon=True).start()

    def _read(self, src, pending, ready):
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                data = b""
            with ready:
                pending.append((time.monotonic() + self.delay, data))
                ready.notify()
            if not data:
                return

    def _write(self, dst, pending, ready, done, both):
        while True:
            with ready:
                while not pending:
                    ready.wait()
                due, data = pending.popleft()
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            if not data:
                break
            try:
                dst.sendall(data)
            except OSError:
                break
        if not done.is_set():
            done.set()
            for s in both:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()

    def close(self):
        self.listener.close()


def start_relays(port, delays):
    """Relays for each delay, served by a child process: {delay_ms: relay port}.

    In a process of their own the relay's threads never wait for this one's GIL (held for up to 5 ms at a time
    while the client runs Python), which would add to every delayed chunk; nor is their CPU counted as the client's.
    """
    parent, child = multiprocessing.Pipe()

    def serve():
        child.send({d: DelayRelay("127.0.0.1", port, d / 1000).port for d in delays})
        threading.Event().wait()  # the relays' threads do the work; the parent ends this process

    proc = multiprocessing.get_context("fork").Process(target=serve, daemon=True)
    proc.start()
    return parent.recv()


# ---- the paths -----------------------------------------------------------------------------------------------------
def libpq_login(args, port, sslmode, channel_binding=None):
    import psycopg

    # verify-full against the bench's CA, as the pipelined client checks the certificate too; host names the
    # certificate's subject, hostaddr spares the lookup.
    conninfo = dict(host="localhost", hostaddr="127.0.0.1", port=port, user=args.user, password=args.password,
                    dbname=args.dbname, sslmode=sslmode, sslrootcert=args.cafile, gssencmode="disable",
                    connect_timeout=10)
    if channel_binding:
        conninfo["channel_binding"] = channel_binding
    try:
        # autocommit: otherwise psycopg sends BEGIN in a round trip of its own before the query
        conn = psycopg.connect(autocommit=True, **conninfo)
    except psycopg.OperationalError as e:
        msg = str(e).strip().splitlines()[-1] if str(e).strip() else repr(e)
        if (channel_binding and "channel binding" in str(e)) or "does not support SSL" in str(e):
            raise Unsupported(msg)
        raise
    try:
        row = conn.execute(QUERY).fetchone()
        assert row == (1,), row
    finally:
        conn.close()


def tls_context(args):
    ctx = ssl.create_default_context(cafile=args.cafile)
    ctx.set_alpn_protocols(["postgresql"])
    return ctx


def message(kind, body):
    return kind + struct.pack("!I", len(body) + 4) + body


def pipelined_flight(args):
    """StartupMessage + PasswordMessage (cleartext) + Query, written at once before any answer is read."""
    params = b"".join(k.encode() + b"\0" + v.encode() + b"\0"
                      for k, v in (("user", args.user), ("database", args.dbname))) + b"\0"
    startup = struct.pack("!II", len(params) + 8, 196608) + params
    return startup + message(b"p", args.password.encode() + b"\0") + message(b"Q", QUERY.encode() + b"\0")


def read_until_first_row(sock):
    """Reads backend messages until the first DataRow; an ErrorResponse or a SASL request ends the login."""
    buf = b""
    while True:
        while len(buf) >= 5:
            kind = buf[:1]
            length = struct.unpack("!I", buf[1:5])[0]
            if len(buf) < 1 + length:
                break
            body = buf[5:1 + length]
            buf = buf[1 + length:]
            if kind == b"D":
                return
            if kind == b"E":
                fields = dict((f[:1], f[1:].decode(errors="replace")) for f in body.split(b"\0") if f)
                raise Unsupported(f"ErrorResponse {fields.get(b'C', '?')}: {fields.get(b'M', '')}")
            if kind == b"R":
                code = struct.unpack("!I", body[:4])[0]
                if code == 10:
                    raise Unsupported("the server asks for SCRAM, a pipelined cleartext password cannot answer")
                if code not in (0, 3):
                    raise Unsupported(f"the server asks for authentication method {code}")
        data = sock.recv(65536)
        if not data:
            raise Unsupported("the server closed the connection")
        buf += data


def pipelined_login(args, port, direct):
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        if not direct:
            raw.sendall(struct.pack("!II", 8, 80877103))  # SSLRequest
            answer = raw.recv(1)
            if answer != b"S":
                raise Unsupported(f"SSLRequest answered {answer!r}")
        try:
            tls = tls_context(args).wrap_socket(raw, server_hostname="localhost")
        except (ssl.SSLError, ConnectionError, socket.timeout) as e:
            raise Unsupported(f"TLS handshake refused: {e.__class__.__name__}: {e}")
        if direct and tls.selected_alpn_protocol() != "postgresql":
            tls.close()
            raise Unsupported("the server did not select ALPN postgresql")
        with tls:
            tls.sendall(pipelined_flight(args))
            read_until_first_row(tls)
            tls.sendall(message(b"X", b""))
    finally:
        raw.close()


def http_request(conn, args):
    body = json.dumps({"query": QUERY, "params": []})
    headers = {"Content-Type": "application/json",
               "Neon-Connection-String": f"postgresql://{args.user}:{args.password}@pgmux/{args.dbname}"}
    conn.request("POST", "/sql", body=body, headers=headers)
    resp = conn.getresponse()
    data = resp.read()
    if resp.status != 200:
        raise RuntimeError(f"POST /sql answered {resp.status}: {data[:200]!r}")
    rows = json.loads(data)["rows"]
    if not rows or list(rows[0].values())[0] not in (1, "1"):
        raise RuntimeError(f"POST /sql answered rows {rows!r}")


def http_connection(args, port):
    if args.https:
        # A new context per connection: a cold request has no TLS session to resume.
        ctx = ssl.create_default_context(cafile=args.cafile)
        return http.client.HTTPSConnection("localhost", port, timeout=10, context=ctx)
    return http.client.HTTPConnection("127.0.0.1", port, timeout=10)


class WarmHttp:
    """One keep-alive connection per port, opened (and used once) outside the timing."""

    def __init__(self):
        self.conns = {}

    def __call__(self, args, port):
        conn = self.conns.get(port)
        if conn is None:
            conn = self.conns[port] = http_connection(args, port)
            http_request(conn, args)
            return False  # this request was the warm-up: not timed
        http_request(conn, args)
        return True


def http_cold(args, port):
    conn = http_connection(args, port)
    try:
        http_request(conn, args)
    finally:
        conn.close()


def make_path(name):
    """The path's login function (args, port) -> None or False ("warm-up, do not count")."""
    return {
        "libpq-scram": lambda a, p: libpq_login(a, p, "disable"),
        "libpq-scram-tls": lambda a, p: libpq_login(a, p, "verify-full"),
        "libpq-scram-tls-cb": lambda a, p: libpq_login(a, p, "verify-full", "require"),
        "pipelined-tls": lambda a, p: pipelined_login(a, p, direct=False),
        "pipelined-direct-tls": lambda a, p: pipelined_login(a, p, direct=True),
        "http-cold": http_cold,
        "http-warm": WarmHttp(),
    }[name]


# ---- measuring -----------------------------------------------------------------------------------------------------
def timed(login, args, port):
    """Wall ms and CPU ms of one counted login."""
    while True:
        w0, c0 = time.perf_counter(), time.process_time()
        counted = login(args, port)
        w1, c1 = time.perf_counter(), time.process_time()
        if counted is not False:
            return (w1 - w0) * 1000, (c1 - c0) * 1000


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--relay-only", action="store_true",
                    help="only relays to --port for 0 and --delay-ms: print their ports, serve until stdin closes")
    ap.add_argument("--path")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--delay-ms", type=float, required=True)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--user")
    ap.add_argument("--password")
    ap.add_argument("--dbname")
    ap.add_argument("--cafile")
    ap.add_argument("--https", action="store_true", help="HTTP paths speak HTTPS")
    args = ap.parse_args()
    if args.relay_only:
        # For coldpath_neon.mjs: node's own timers would wait behind the driver's JavaScript, as threads here
        # would wait for the GIL.
        ports = {d: DelayRelay("127.0.0.1", args.port, d / 1000).port for d in (0, args.delay_ms)}
        print(ports[0], ports[args.delay_ms])
        sys.stdin.read()
        return
    if not (args.path and args.user and args.password and args.dbname and args.cafile):
        ap.error("--path, --user, --password, --dbname and --cafile are needed")

    login = make_path(args.path)
    relays = start_relays(args.port, (0, args.delay_ms))
    try:
        timed(login, args, args.port)  # a first login outside every figure: pool and caches warm for all
        t0, td, cpu, wall = [], [], [], []
        # Interleaved, so drift on a shared machine lands on both delays and the CPU figure alike.
        for _ in range(args.reps):
            t0.append(timed(login, args, relays[0])[0])
            td.append(timed(login, args, relays[args.delay_ms])[0])
            w, c = timed(login, args, args.port)
            wall.append(w)
            cpu.append(c)
    except Unsupported as e:
        print(f"unsupported\tNA\tNA\tNA\tNA\tNA\t{e}")
        return
    except Exception as e:  # noqa: BLE001 - any other failure is reported as a row, the run goes on
        print(f"error\tNA\tNA\tNA\tNA\tNA\t{e.__class__.__name__}: {str(e).strip()[:200]}")
        return
    m0, md = min(t0), min(td)
    # +1: the TCP handshake, which the relay does not delay; a warm HTTP request reuses its connection.
    rtt = (md - m0) / (2 * args.delay_ms) + (0 if args.path == "http-warm" else 1)
    print(f"ok\t{m0:.2f}\t{md:.2f}\t{rtt:.2f}\t{statistics.median(cpu):.3f}\t{statistics.median(wall):.2f}\t")


if __name__ == "__main__":
    sys.stdout.reconfigure(line_buffering=True)
    main()
