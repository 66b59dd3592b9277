"""A hostile server on 127.0.0.1: the load balancers, proxies and broken masters operators meet.

Each test scripts what the next requests get (`server.script(behaviour, ...)`);
every request is recorded as it was read, before the behaviour runs, so a
test can assert exactly what reached the server. Plain HTTP or TLS.

    server = hostile.start()
    server.script(hostile.redirect(307, "/same"), hostile.answer(200, {"status": "HEALTHY"}))
    ...
    server.received   # [Request(method, path, headers, body), ...]
"""
import json
import os
import socketserver
import ssl
import threading
import time
import zlib

DEADLINE = 30.0  # seconds: no behaviour streams for longer, whoever is reading


class Request:
    def __init__(self, method: str, path: str, headers: dict, body: bytes):
        self.method, self.path, self.headers, self.body = method, path, headers, body

    def __repr__(self):
        return "Request(%s %s)" % (self.method, self.path)


def _head(status: int, headers) -> bytes:
    lines = ["HTTP/1.1 %d %s" % (status, REASONS.get(status, "Status"))]
    lines += ["%s: %s" % pair for pair in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


REASONS = {200: "OK", 201: "Created", 202: "Accepted", 301: "Moved Permanently", 302: "Found",
           303: "See Other", 307: "Temporary Redirect", 308: "Permanent Redirect", 503: "Service Unavailable"}


# -- behaviours: each takes the connection and the request, and answers (or not) --------------

def answer(status: int, body, headers=()):
    """A whole answer; a body that is not bytes or text is sent as JSON."""
    if isinstance(body, str):
        data = body.encode()
    elif isinstance(body, bytes):
        data = body
    else:
        data = json.dumps(body).encode()

    def behave(conn, request):
        conn.sendall(_head(status, [("Content-Type", "application/json"), ("Content-Length", len(data)),
                                    *headers]) + data)
    behave.keep_alive = True
    return behave


def by_path(bodies: dict, otherwise):
    """A 200 with the body given for the request's path (query left out), else `otherwise`."""
    def behave(conn, request):
        body = bodies.get(request.path.split("?")[0])
        return (otherwise if body is None else answer(200, body))(conn, request)
    behave.keep_alive = True
    return behave


def redirect(status: int, location: str):
    def behave(conn, request):
        conn.sendall(_head(status, [("Location", location), ("Content-Length", 0)]))
    behave.keep_alive = True
    return behave


def drop():
    """Read the request, then close the connection without a word."""
    def behave(conn, request):
        pass
    return behave


def break_tls():
    """Read the request, then write bytes that are no TLS record on the raw socket."""
    def behave(conn, request):
        os.write(conn.fileno(), b"\x15\x03\x03\x00\x02\x02\x50" + b"garbage" * 10)
    return behave


def endless():
    """A chunked body that never ends (until the reader hangs up, or DEADLINE)."""
    def behave(conn, request):
        conn.sendall(_head(200, [("Content-Type", "application/json"), ("Transfer-Encoding", "chunked")]))
        chunk = b"%x\r\n%s\r\n" % (65536, b"[" + b" " * 65535)
        _stream(conn, lambda: chunk)
    return behave


def huge(size: int):
    """A Content-Length of `size` bytes, streamed until the reader hangs up (or DEADLINE)."""
    def behave(conn, request):
        conn.sendall(_head(200, [("Content-Type", "application/json"), ("Content-Length", size)]))
        block = b" " * 65536
        _stream(conn, lambda: block)
    return behave


def gzip_bomb(size: int):
    """`size` bytes of JSON-looking text, gzip-compressed to a small fraction of it."""
    data = _bomb(size)

    def behave(conn, request):
        conn.sendall(_head(200, [("Content-Type", "application/json"), ("Content-Encoding", "gzip"),
                                 ("Content-Length", len(data))]) + data)
    return behave


_BOMBS = {}


def _bomb(size: int) -> bytes:
    """Compressed a megabyte at a time, so this process never holds `size` bytes either."""
    if size not in _BOMBS:
        packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: a gzip header and trailer
        parts, block = [packer.compress(b"[")], b" " * 1024 ** 2
        for _ in range((size - 1) // len(block)):
            parts.append(packer.compress(block))
        parts.append(packer.flush())
        _BOMBS[size] = b"".join(parts)
    return _BOMBS[size]


def trickle(body: bytes, seconds_per_byte: float):
    """A correct answer whose body arrives one byte at a time; request.body_sent
    counts the bytes written before the reader hung up, request.ended is set once it stopped."""
    def behave(conn, request):
        request.body_sent, request.ended = 0, threading.Event()
        try:
            conn.sendall(_head(200, [("Content-Type", "application/json"), ("Content-Length", len(body))]))
            started = time.monotonic()
            for byte in body:
                if time.monotonic() - started > DEADLINE:
                    return
                conn.sendall(bytes([byte]))
                request.body_sent += 1
                time.sleep(seconds_per_byte)
        finally:
            request.ended.set()
    return behave


def hang():
    """Read the request and never answer (until the reader hangs up, or DEADLINE)."""
    def behave(conn, request):
        try:
            conn.recv(1)
        except OSError:
            pass
    return behave


def unavailable_for(seconds: float, then):
    """503 to everything for `seconds` from the first request (a master election), then `then`."""
    began = []

    def behave(conn, request):
        began.append(time.monotonic()) if not began else None
        if time.monotonic() - began[0] < seconds:
            return answer(503, {"error": "leader election in progress"})(conn, request)
        return then(conn, request)
    behave.keep_alive = True
    return behave


def _stream(conn, block):
    started = time.monotonic()
    try:
        while time.monotonic() - started < DEADLINE:
            conn.sendall(block())
    except OSError:
        pass  # the reader hung up: what we wanted


# -- the server -----------------------------------------------------------------------------------

class _Handler(socketserver.BaseRequestHandler):
    def handle(self):
        conn = self.request
        conn.settimeout(DEADLINE)
        if isinstance(conn, ssl.SSLSocket):
            try:
                conn.do_handshake()
            except (OSError, ValueError):
                return
        reader = conn.makefile("rb")
        while True:
            try:
                request = _read_request(reader)
            except (OSError, ValueError):
                return
            if request is None:
                return
            server = self.server
            with server.lock:
                server.received.append(request)
                behave = server.queue.pop(0) if server.queue else server.default
            try:
                with server.busy:
                    behave(conn, request)
            except OSError:
                return
            if not getattr(behave, "keep_alive", False):
                return  # the connection is closed after anything but a whole answer


def _read_request(reader):
    line = reader.readline(65536)
    if not line:
        return None
    method, path, _ = line.decode("latin-1").split(" ", 2)
    headers = {}
    while True:
        line = reader.readline(65536).decode("latin-1")
        if line in ("\r\n", "\n", ""):
            break
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length") or 0)
    return Request(method, path, headers, reader.read(length) if length else b"")


class Busy:
    """Counts the behaviours running, so a test can wait for the last one to end."""

    def __init__(self):
        self.count, self.done = 0, threading.Condition()

    def __enter__(self):
        with self.done:
            self.count += 1

    def __exit__(self, *exc):
        with self.done:
            self.count -= 1
            self.done.notify_all()

    def wait(self, timeout: float) -> bool:
        with self.done:
            return self.done.wait_for(lambda: self.count == 0, timeout)


class HostileServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, tls=None):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.busy = Busy()
        self.lock = threading.Lock()
        self.received, self.queue = [], []
        self.default = answer(200, {"status": "HEALTHY"})
        self.tls = None
        if tls:
            self.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.tls.load_cert_chain(*tls)

    def get_request(self):
        conn, address = super().get_request()
        if self.tls:
            conn = self.tls.wrap_socket(conn, server_side=True, do_handshake_on_connect=False)
        return conn, address

    def handle_error(self, request, client_address):
        pass  # a client hanging up mid-answer is what these tests do

    @property
    def port(self) -> int:
        return self.server_address[1]

    @property
    def url(self) -> str:
        return "%s://127.0.0.1:%d" % ("https" if self.tls else "http", self.port)

    def script(self, *behaviours) -> None:
        """What the next requests get, in order; after them, `default`."""
        with self.lock:
            self.queue[:] = list(behaviours)

    def stop(self) -> None:
        self.shutdown()
        self.server_close()

    def settle(self, timeout: float = 30.0) -> None:
        """Wait until no behaviour is running (a trickle has seen its reader hang up, say)."""
        assert self.busy.wait(timeout), "the server is still busy after %g s" % timeout


def start(tls=None) -> HostileServer:
    server = HostileServer(tls)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server



# -- a forward proxy: what sits between operators and their clusters in companies and pods ---------

class ProxyRequest(Request):
    """A request as the proxy read it: `target` is the absolute URL, or host:port for CONNECT."""

    def __init__(self, method: str, target: str, headers: dict, body: bytes):
        super().__init__(method, target, headers, body)
        self.target = target


def forward():
    """Pass the request on to its (loopback) target and its answer back: what a proxy should do."""
    def behave(proxy, conn, request):
        import http.client
        from urllib.parse import urlsplit
        if request.method == "CONNECT":
            return _tunnel(conn, request.target)
        parts = urlsplit(request.target)
        if parts.hostname not in ("127.0.0.1", "localhost"):
            return answer(502, "only loopback targets here")(conn, request)
        upstream = http.client.HTTPConnection(parts.hostname, parts.port, timeout=DEADLINE)
        headers = {k: v for k, v in request.headers.items() if k not in ("proxy-connection", "connection")}
        upstream.request(request.method, parts.path + ("?" + parts.query if parts.query else ""),
                         body=request.body or None, headers=headers)
        response = upstream.getresponse()
        data = response.read()
        conn.sendall(_head(response.status, [(k, v) for k, v in response.getheaders()
                                             if k.lower() not in ("transfer-encoding", "connection",
                                                                  "content-length")] +
                           [("Content-Length", len(data))]) + data)
        upstream.close()
    behave.keep_alive = behave.for_proxy = True
    return behave


def refuse_connect(status: int = 502):
    """Answer a CONNECT with `status`: the proxy could not reach the target; nothing was tunnelled."""
    def behave(proxy, conn, request):
        conn.sendall(_head(status, [("Content-Length", 0)]))
    behave.for_proxy = True
    return behave


def _tunnel(conn, target: str):
    import select
    import socket
    host, _, port = target.rpartition(":")
    if host.strip("[]") not in ("127.0.0.1", "localhost", "::1"):
        conn.sendall(_head(502, [("Content-Length", 0)]))
        return
    try:
        upstream = socket.create_connection((host.strip("[]"), int(port)), timeout=DEADLINE)
    except OSError:
        conn.sendall(_head(502, [("Content-Length", 0)]))
        return
    conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
    started = time.monotonic()
    with upstream:
        while time.monotonic() - started < DEADLINE:
            ready, _, _ = select.select([conn, upstream], [], [], 0.5)
            for sock in ready:
                data = sock.recv(65536)
                if not data:
                    return
                (upstream if sock is conn else conn).sendall(data)


def _as_proxy_behaviour(behave):
    """The origin behaviours (drop, hang, answer...) take (conn, request); a proxy's take the proxy too."""
    if getattr(behave, "for_proxy", False):
        return behave

    def proxied(proxy, conn, request):
        return behave(conn, request)
    proxied.keep_alive = getattr(behave, "keep_alive", False)
    return proxied


class _ProxyHandler(socketserver.BaseRequestHandler):
    def handle(self):
        conn = self.request
        conn.settimeout(DEADLINE)
        reader = conn.makefile("rb")
        while True:
            try:
                request = _read_request(reader)
            except (OSError, ValueError):
                return
            if request is None:
                return
            request = ProxyRequest(request.method, request.path, request.headers, request.body)
            proxy = self.server
            with proxy.lock:
                proxy.received.append(request)
                behave = proxy.queue.pop(0) if proxy.queue else proxy.default
            behave = _as_proxy_behaviour(behave)
            try:
                with proxy.busy:
                    behave(proxy, conn, request)
            except OSError:
                return
            if request.method == "CONNECT" or not getattr(behave, "keep_alive", False):
                return


class ProxyServer(HostileServer):
    """A forward proxy on 127.0.0.1 (absolute-form requests and CONNECT tunnels), scripted like
    the hostile server: `received` holds what reached the proxy, `script()` what the next get."""

    def __init__(self):
        socketserver.ThreadingTCPServer.__init__(self, ("127.0.0.1", 0), _ProxyHandler)
        self.busy = Busy()
        self.lock = threading.Lock()
        self.received, self.queue = [], []
        self.default = forward()
        self.tls = None

    @property
    def targets(self) -> list:
        return [(r.method, r.target) for r in self.received]


def start_proxy() -> ProxyServer:
    server = ProxyServer()
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server
