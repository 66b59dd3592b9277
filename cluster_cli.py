#!/usr/bin/env python3
"""Manage a JadeVectorDB cluster: status, nodes, shards, migrations, diagnostics.

    python cluster_cli.py --host localhost --port 8080 status
    python cluster_cli.py nodes --format json | jq -r '.[].node_id'
    python cluster_cli.py migrate-shard --shard-id shard-00 --to-node node-worker-003 --wait
"""
import argparse
import os
import re
import sys
import time

__version__ = "1.0.0"

DEFAULT_HOST = "localhost"
DEFAULT_PORT = 8080
DEFAULT_FORMAT = "table"
DEFAULT_TIMEOUT = 10.0
DEFAULT_RETRIES = 2
DEFAULT_WAIT_TIMEOUT = 600.0
DEFAULT_POLL_INTERVAL = 1.0
DEFAULT_WATCH_INTERVAL = 2.0
RETRY_AFTER_CAP = 5.0      # seconds; a longer Retry-After is not honoured in full
RETRYABLE_STATUS = (502, 503, 504)
STRATEGIES = ("LIVE_COPY", "SNAPSHOT", "INCREMENTAL")
CLUSTER_STATUSES = ("HEALTHY", "DEGRADED", "UNHEALTHY")
NODE_STATUSES = ("HEALTHY", "JOINING", "DEGRADED", "UNREACHABLE", "LEAVING")
SHARD_STATUSES = ("HEALTHY", "MIGRATING", "UNDER_REPLICATED", "OFFLINE")
RUNNING_MIGRATION = ("PENDING", "IN_PROGRESS")
DOWN_NODE_STATUSES = ("UNREACHABLE",)
MAX_CELL = 200             # characters; a longer server value is clipped in table/compact

EXIT_OK = 0
EXIT_FAILED = 1            # the cluster refused or failed the request
EXIT_USAGE = 2             # invalid usage or input; nothing was sent
EXIT_UNREACHABLE = 3       # the cluster could not be reached
EXIT_CONDITION = 4         # a --check/--wait condition was not met
EXIT_INTERRUPTED = 130

ENV_HOST, ENV_PORT, ENV_URL = "JADEVECTORDB_HOST", "JADEVECTORDB_PORT", "JADEVECTORDB_URL"
ENV_FORMAT, ENV_API_KEY = "JADEVECTORDB_FORMAT", "JADEVECTORDB_API_KEY"
API_KEY_HINT = "pass a valid key with --api-key or JADEVECTORDB_API_KEY"


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------

class ClusterError(Exception):
    """A failure the CLI reports in one line; carries the process exit code."""

    exit_code = EXIT_FAILED
    hint = ""

    def __init__(self, message: str, hint: str = None):
        super().__init__(message)
        self.message = message
        if hint is not None:
            self.hint = hint

    def __str__(self) -> str:
        return self.message + ("; " + self.hint if self.hint else "")


class InvalidInput(ClusterError):
    """Bad input caught before anything was sent."""

    exit_code = EXIT_USAGE


class ClusterUnreachable(ClusterError):
    """No master could be reached (refused, DNS, timeout, TLS)."""

    exit_code = EXIT_UNREACHABLE


class ConditionNotMet(ClusterError):
    """A --check or --wait condition did not hold."""

    exit_code = EXIT_CONDITION


class BadResponse(ClusterError):
    """The cluster answered, but not with the JSON the contract promises."""

    def __init__(self, message: str, status_code: int = None):
        super().__init__(message)
        self.status_code = status_code


class ApiError(ClusterError):
    """The cluster said no: an HTTP error status, with the server's message."""

    def __init__(self, status_code: int, message: str, code: str = None):
        detail = "HTTP %d%s" % (status_code, " " + code if code else "")
        super().__init__("%s (%s)" % (message, detail))
        self.status_code = status_code
        self.server_message = message
        self.code = code


class BadRequest(ApiError):
    pass


class AuthenticationFailed(ApiError):
    hint = API_KEY_HINT


class PermissionDenied(ApiError):
    hint = "this API key may not do that; use a key with more rights (--api-key or JADEVECTORDB_API_KEY)"


class NotFound(ApiError):
    pass


class Conflict(ApiError):
    pass


class ServiceUnavailable(ApiError):
    hint = "the cluster asked to retry later (leader election or overload); raise --retries to wait longer"


HTTP_ERRORS = {400: BadRequest, 401: AuthenticationFailed, 403: PermissionDenied,
               404: NotFound, 409: Conflict, 503: ServiceUnavailable}


def excerpt(content: bytes, limit: int = 120) -> str:
    """The start of a body, on one line, for an error message."""
    text = " ".join(content[:limit * 4].decode("utf-8", "replace").split())
    return repr(text[:limit] + ("..." if len(text) > limit or len(content) > limit * 4 else ""))


# ---------------------------------------------------------------------------
# Input checks (everything here runs before a request is sent)
# ---------------------------------------------------------------------------

_ADDRESS = re.compile(r"^(?:\[([0-9A-Fa-f:.]+)\]|([^\s:/\[\]@]+)):([0-9]+)$")
_HEADER_SAFE = re.compile(r"^[\x21-\x7e]+$")


def require_id(value, flag: str) -> str:
    """An ID the operator typed: non-empty, no control characters."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput("%s must not be empty" % flag)
    if not value.isprintable():
        raise InvalidInput("%s contains control characters: %r" % (flag, value))
    return value


def parse_port(text, source: str) -> int:
    try:
        port = int(str(text).strip())
    except ValueError:
        raise InvalidInput("%s: %r is not a port number (1-65535)" % (source, text)) from None
    if not 1 <= port <= 65535:
        raise InvalidInput("%s: port %d is out of range (1-65535)" % (source, port))
    return port


def parse_address(text, flag: str = "--address") -> str:
    """Check HOST:PORT (IPv6 as [::1]:8080); returns it unchanged."""
    match = _ADDRESS.match(text or "")
    if not match:
        raise InvalidInput("%s must be HOST:PORT (IPv6 as [::1]:8080), got %r" % (flag, text))
    parse_port(match.group(3), flag)
    return text


def parse_hosts(hosts: str, port: int) -> list:
    """--host a,b:9090,[::1]:8080 -> base URLs, the port defaulting to --port."""
    urls = []
    for entry in (hosts or "").split(","):
        entry = entry.strip()
        if "://" in entry:
            raise InvalidInput("--host takes host names; use --url for %r" % entry)
        if not entry:
            raise InvalidInput("--host must not be empty (got %r)" % hosts)
        if entry.count(":") > 1 and not entry.startswith("["):
            entry = "[%s]" % entry  # a bare IPv6 address
        if _ADDRESS.match(entry):
            parse_address(entry, "--host")
            urls.append("http://" + entry)
        elif re.match(r"^(\[[0-9A-Fa-f:.]+\]|[^\s:/\[\]@]+)$", entry):
            urls.append("http://%s:%d" % (entry, port))
        else:
            raise InvalidInput("--host: %r is not a host or host:port" % entry)
    return urls


def parse_urls(text: str) -> list:
    """--url https://a:8443,https://b:8443 -> base URLs, checked."""
    from urllib.parse import urlsplit
    urls = []
    for entry in (text or "").split(","):
        entry = entry.strip().rstrip("/")
        try:
            parts = urlsplit(entry)
            port = parts.port  # ValueError when not a number, or above 65535
        except ValueError as exc:
            raise InvalidInput("--url: %r is not a valid URL (%s)" % (entry, exc)) from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InvalidInput("--url: %r must look like http://host:port or https://host:port" % entry)
        if port is not None:
            parse_port(port, "--url")  # and port 0
        if parts.username or parts.password or parts.query or parts.fragment:
            raise InvalidInput("--url: %r must not carry credentials, a query or a fragment "
                               "(pass the key with --api-key)" % entry)
        urls.append(entry)
    return urls


def check_api_key(key: str) -> str:
    if not _HEADER_SAFE.match(key):
        raise InvalidInput("the API key contains spaces or characters not allowed in an HTTP header")
    return key


def check_strategy(strategy: str) -> str:
    if strategy not in STRATEGIES:
        raise InvalidInput("--strategy must be one of %s, got %r" % (", ".join(STRATEGIES), strategy))
    return strategy


# ---------------------------------------------------------------------------
# The client
# ---------------------------------------------------------------------------

class _BearerAuth:
    """Authorization: Bearer KEY, re-applied per request and never shown in a repr."""

    def __init__(self, key: str):
        self._key = key

    def __call__(self, request):
        request.headers["Authorization"] = "Bearer " + self._key
        return request

    def __repr__(self) -> str:
        return "<bearer ***>"


class ClusterCLI:
    """Client for the /api/v1/cluster endpoints of a JadeVectorDB cluster.

    Methods return plain dicts and lists (list endpoints unwrapped), never
    print, and raise a ClusterError subclass on failure.
    """

    def __init__(self, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, *, url: str = None,
                 api_key: str = None, timeout: float = DEFAULT_TIMEOUT,
                 retries: int = DEFAULT_RETRIES, verify=True):
        port = parse_port(port, "port")
        self.base_urls = parse_urls(url) if url else parse_hosts(host, port)
        if not timeout or timeout <= 0:
            raise InvalidInput("timeout must be a positive number of seconds")
        if retries < 0:
            raise InvalidInput("retries must be 0 or more")
        self.timeout = float(timeout)
        self.retries = int(retries)
        import logging
        import requests
        self._requests = requests
        self._log = logging.getLogger("cluster_cli")
        self._session = requests.Session()
        self._session.headers.update({"Accept": "application/json",
                                      "User-Agent": "jadevectordb-cluster-cli/" + __version__})
        self._verify = verify  # per request: a session-wide value loses to REQUESTS_CA_BUNDLE
        if verify is False:
            import urllib3
            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
        self._auth = _BearerAuth(check_api_key(api_key)) if api_key else None
        self._current = 0  # the master that answered last is asked first

    def __repr__(self) -> str:
        return "ClusterCLI(%s)" % ",".join(self.base_urls)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def close(self) -> None:
        """Close the keep-alive connections."""
        self._session.close()

    @property
    def answered_by(self) -> str:
        """The base URL of the master that answered last."""
        return self.base_urls[self._current]

    # -- endpoints -----------------------------------------------------------

    def health(self) -> dict:
        """GET /health: liveness of the node this client talks to."""
        return self._get_object("/health")

    def cluster_status(self) -> dict:
        """GET /api/v1/cluster/status."""
        return self._get_object("/api/v1/cluster/status")

    def diagnostics(self) -> dict:
        """GET /api/v1/cluster/diagnostics."""
        return self._get_object("/api/v1/cluster/diagnostics")

    def metrics(self) -> dict:
        """GET /api/v1/cluster/metrics."""
        return self._get_object("/api/v1/cluster/metrics")

    def list_nodes(self) -> list:
        """GET /api/v1/cluster/nodes, unwrapped to a list."""
        return unwrap_list(self._request("GET", "/api/v1/cluster/nodes"), "nodes")

    def add_node(self, node_id: str, address: str) -> dict:
        """POST /api/v1/cluster/nodes: join a node (sent once, never retried)."""
        body = {"node_id": require_id(node_id, "--node-id"), "address": parse_address(address)}
        return expect_object(self._request("POST", "/api/v1/cluster/nodes", body=body))

    def remove_node(self, node_id: str) -> dict:
        """DELETE /api/v1/cluster/nodes/{id}: its shards are redistributed."""
        require_id(node_id, "--node-id")
        return expect_object(self._request("DELETE", "/api/v1/cluster/nodes/{}", node_id))

    def node_health(self, node_id: str) -> dict:
        """GET /api/v1/cluster/nodes/{id}/health."""
        return self._get_object("/api/v1/cluster/nodes/{}/health", require_id(node_id, "--node-id"))

    def list_shards(self, database_id: str = None, node_id: str = None, status: str = None) -> list:
        """GET /api/v1/cluster/shards, filtered by the server (optional parameters)."""
        params = {name: value for name, value in
                  (("database_id", database_id), ("node_id", node_id), ("status", status)) if value}
        return unwrap_list(self._request("GET", "/api/v1/cluster/shards", params=params or None), "shards")

    def shard_status(self, shard_id: str) -> dict:
        """GET /api/v1/cluster/shards/{id}, with its latest migration."""
        return self._get_object("/api/v1/cluster/shards/{}", require_id(shard_id, "--shard-id"))

    def migrate_shard(self, shard_id: str, target_node: str, source_node: str = None,
                      strategy: str = "LIVE_COPY") -> dict:
        """POST /api/v1/cluster/shards/{id}/migrate (sent once, never retried)."""
        body = {"target_node": require_id(target_node, "--to-node"), "strategy": check_strategy(strategy)}
        if source_node is not None:
            body["source_node"] = require_id(source_node, "--from-node")
        path = "/api/v1/cluster/shards/{}/migrate"
        return expect_object(self._request("POST", path, require_id(shard_id, "--shard-id"), body=body))

    # -- transport -------------------------------------------------------------

    def _get_object(self, path: str, *ids) -> dict:
        return expect_object(self._request("GET", path, *ids))

    def _request(self, method: str, path: str, *ids, params=None, body=None):
        """The one place for path quoting, timeouts, retries, failover and errors."""
        from urllib.parse import quote
        path = path.format(*(quote(i, safe="") for i in ids))
        idempotent = method == "GET"
        attempts = 1 + (self.retries if idempotent else 0)
        for attempt in range(attempts):
            final = attempt == attempts - 1
            try:
                response = self._send(method, path, params, body, idempotent)
            except ClusterUnreachable:
                if final:
                    raise
                self._pause(attempt, None)
                continue
            if response.status_code in RETRYABLE_STATUS and not final:
                self._pause(attempt, response.headers.get("Retry-After"))
                continue
            return decode(response)

    def _pause(self, attempt: int, retry_after) -> None:
        delay = 0.2 * (2 ** attempt)
        if retry_after is not None:
            try:
                delay = min(RETRY_AFTER_CAP, max(0.0, float(retry_after)))
            except ValueError:
                pass  # an HTTP date; the backoff will do
        self._log.debug("retrying in %.1fs", delay)
        time.sleep(delay)

    def _send(self, method, path, params, body, idempotent):
        """Ask each master in turn; move on only when one cannot be reached."""
        exceptions = self._requests.exceptions
        failures = []
        count = len(self.base_urls)
        for step in range(count):
            index = (self._current + step) % count
            url = self.base_urls[index] + path
            started = time.monotonic()
            try:
                response = self._session.request(method, url, params=params, json=body, timeout=self.timeout,
                                                 auth=self._auth, verify=self._verify)
            except (exceptions.ConnectionError, exceptions.Timeout) as exc:
                failure = describe_failure(exc, self.base_urls[index], self.timeout)
                self._log.debug("%s %s -> %s", method, url, failure)
                if not (idempotent or connect_failed(exc)):
                    # The request may have reached the cluster: never send it again.
                    raise ClusterUnreachable(failure, "the %s may or may not have been applied; "
                                             "check the cluster before trying again" % method) from None
                failures.append((failure, exc))
                continue
            except exceptions.RequestException as exc:
                raise BadResponse("request to %s failed: %s" % (url, exc)) from None
            self._current = index
            self._log.debug("%s %s -> %d (%.1f ms)", method, response.url, response.status_code,
                            (time.monotonic() - started) * 1000)
            return response
        tls = any(isinstance(exc, exceptions.SSLError) for _, exc in failures)
        hint = ("pass --ca-cert PATH to trust the cluster's CA, or --insecure to skip verification"
                if tls else "")
        raise ClusterUnreachable("; ".join(f for f, _ in failures), hint)


def connect_failed(exc) -> bool:
    """True when the request cannot have been sent (no connection was made)."""
    import requests
    from urllib3.exceptions import NewConnectionError
    if isinstance(exc, (requests.exceptions.ConnectTimeout, requests.exceptions.SSLError)):
        return True
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(reason, NewConnectionError)


def describe_failure(exc, base_url: str, timeout: float) -> str:
    import requests
    exceptions = requests.exceptions
    if isinstance(exc, exceptions.ConnectTimeout):
        return "cannot reach %s: no connection within %gs" % (base_url, timeout)
    if isinstance(exc, exceptions.ReadTimeout):
        return "no answer from %s within %gs" % (base_url, timeout)
    if isinstance(exc, exceptions.SSLError):
        return "TLS with %s failed: %s" % (base_url, _reason(exc))
    return "cannot reach %s: %s" % (base_url, _reason(exc))


def _reason(exc) -> str:
    text = str(getattr(exc.args[0], "reason", None) or exc) if exc.args else str(exc)
    for known in ("Connection refused", "Name or service not known", "No route to host",
                  "certificate verify failed", "Temporary failure in name resolution",
                  "Connection reset by peer", "Remote end closed connection without response"):
        if known in text:
            return known.lower() if known[0].isupper() else known
    return text.split(": ", 1)[-1][:160]


def decode(response):
    """The body as JSON, or the matching ClusterError."""
    import json
    content = response.content
    status = response.status_code
    if status >= 400:
        message, code = None, None
        try:
            body = json.loads(content)
            if isinstance(body, dict):
                message, code = body.get("error"), body.get("code")
        except (ValueError, RecursionError):
            pass
        if not isinstance(message, str) or not message:
            message = "%s%s" % (response.reason or "error", ": " + excerpt(content) if content.strip() else "")
        error_class = HTTP_ERRORS.get(status, ApiError)
        raise error_class(status, message, code if isinstance(code, str) else None)
    if not content.strip():
        raise BadResponse("the cluster answered HTTP %d with an empty body where JSON was expected" % status, status)
    try:
        with collector_paused():
            return json.loads(content)
    except (ValueError, RecursionError):
        raise BadResponse("the cluster answered HTTP %d with a body that is not JSON: %s"
                          % (status, excerpt(content)), status) from None


class collector_paused:
    """Pause the cyclic garbage collector: parsing and rendering a large list
    allocate hundreds of thousands of containers, none in a cycle, and the
    collector would scan them over and over for nothing (about a third of
    the parse time of 100,000 shards)."""

    def __enter__(self):
        import gc
        self.was_enabled = gc.isenabled()
        gc.disable()

    def __exit__(self, *exc_info):
        if self.was_enabled:
            import gc
            gc.enable()


def expect_object(data) -> dict:
    if not isinstance(data, dict):
        raise BadResponse("expected a JSON object from the cluster, got %s" % type(data).__name__)
    return data


def unwrap_list(data, key: str) -> list:
    """{"nodes": [...]} or a bare [...] -> the list."""
    if isinstance(data, dict):
        data = field(data, key)
    if not isinstance(data, list):
        raise BadResponse("expected a list of %s from the cluster" % key)
    return data


# ---------------------------------------------------------------------------
# Rendering: pure functions from data to text
# ---------------------------------------------------------------------------

_CAMEL = {}


def field(obj, name: str):
    """A field by its snake_case name, or the camelCase one the REST API also uses."""
    if not isinstance(obj, dict):
        return None
    value = obj.get(name)
    if value is None and "_" in name:
        camel = _CAMEL.get(name)
        if camel is None:
            head, *rest = name.split("_")
            camel = _CAMEL[name] = head + "".join(part.title() for part in rest)
        value = obj.get(camel)
    return value


def number(value):
    """An int or float from a number or a numeric string; None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            try:
                return float(value)
            except ValueError:
                return None
    return None


def finite(value) -> float:
    """A finite number from the server, or 0 (for arithmetic on untrusted values)."""
    n = number(value)
    return float(n) if n is not None and abs(n) < float("inf") else 0.0


def fmt_text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        text = value
    elif isinstance(value, bool):
        text = "yes" if value else "no"
    elif isinstance(value, list):
        text = ", ".join(fmt_text(item) for item in value)
    elif isinstance(value, dict):
        import json
        text = json.dumps(value, separators=(",", ":"))
    else:
        text = str(value)
    if not text.isprintable():  # a server's string must not move the cursor or break a row
        text = "".join(c if c.isprintable() else " " for c in text)
    return text if len(text) <= MAX_CELL else text[:MAX_CELL - 3] + "..."


def fmt_count(value) -> str:
    n = number(value)
    if n is None or n != n or n in (float("inf"), float("-inf")):
        return fmt_text(value)
    return "{:,}".format(int(n)) if isinstance(n, int) or n.is_integer() else "{:,.1f}".format(n)


def _fmt_number(value, template: str) -> str:
    n = number(value)
    return fmt_text(value) if n is None else template % n


def fmt_percent(value) -> str:
    return _fmt_number(value, "%.1f%%")


def fmt_ms(value) -> str:
    return _fmt_number(value, "%.1f ms")


def fmt_rate(value) -> str:
    n = number(value)
    return fmt_text(value) if n is None else "{:,.1f}/s".format(n)


def fmt_bytes(value) -> str:
    n = number(value)
    if n is None:
        return fmt_text(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return ("%d %s" % (n, unit)) if unit == "B" else "%.1f %s" % (n, unit)
        n /= 1024.0


def fmt_duration(value) -> str:
    n = number(value)
    if n is None or n != n or abs(n) == float("inf"):
        return fmt_text(value)
    seconds = int(n)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return "%dd %dh %dm" % (days, hours, minutes)
    if hours:
        return "%dh %dm" % (hours, minutes)
    return "%dm %ds" % (minutes, seconds) if minutes else "%ds" % seconds


def fmt_status(value) -> str:
    """A status word; coloured by cell() when colour is on."""
    return fmt_text(value)


def fmt_names(value) -> str:
    """A list of IDs, or 'none' when the server said there are none."""
    return "none" if value == [] else fmt_text(value)


def fmt_yes_no(value) -> str:
    return "" if value is None else ("yes" if value else "no")


COLOURS = {"32": ("HEALTHY", "PASS", "COMPLETED", "OK"),
           "33": ("DEGRADED", "WARN", "JOINING", "LEAVING", "MIGRATING", "UNDER_REPLICATED",
                  "PENDING", "IN_PROGRESS"),
           "31": ("UNHEALTHY", "UNREACHABLE", "FAILED", "FAIL", "OFFLINE", "ERROR")}
COLOUR_OF = {word: code for code, words in COLOURS.items() for word in words}


def paint(text: str) -> str:
    code = COLOUR_OF.get(text.upper())
    return "\x1b[%sm%s\x1b[0m" % (code, text) if code else text


def cell(obj, name: str, formatter, color: bool = False) -> str:
    text = formatter(field(obj, name))
    return paint(text) if color and formatter is fmt_status else text


def as_dict(data) -> dict:
    return data if isinstance(data, dict) else {}


def as_list(data) -> list:
    return data if isinstance(data, list) else []


def render_grid(columns, rows, color: bool = False) -> str:
    """A box-drawn grid; columns are (header, field, formatter[, min width])."""
    import tabulate
    headers = [c[0].ljust(c[3] if len(c) > 3 else 0) for c in columns]
    body = [[cell(row, c[1], c[2], color) for c in columns] for row in rows]
    # The specification's grids are as wide as their widest cell: no extra header padding.
    padding, tabulate.MIN_PADDING = tabulate.MIN_PADDING, 0
    try:
        return tabulate.tabulate(body, headers, tablefmt="simple_outline", disable_numparse=True)
    finally:
        tabulate.MIN_PADDING = padding


def render_rows(rows, obj, color: bool = False) -> str:
    """'Label: value' lines; a missing value leaves the label alone."""
    return "\n".join(("%s: %s" % (label, cell(obj, name, formatter, color))).rstrip()
                     for label, name, formatter in rows)


def render_block(title: str, rows, obj, color: bool = False) -> str:
    """A titled key/value block, as the specification's `status` output."""
    return "%s\n%s\n%s" % (title, "=" * len(title), render_rows(rows, obj, color))


def section(title: str, body: str) -> str:
    """A sub-heading and its body, after a blank line."""
    return "\n\n%s\n%s\n%s" % (title, "-" * len(title), body)


def compact_line(obj, columns, color: bool = False) -> str:
    return " | ".join(cell(obj, c[1], c[2], color) for c in columns)


STATUS_ROWS = (("Master Node", "master_node", fmt_text), ("Total Nodes", "total_nodes", fmt_count),
               ("Active Nodes", "active_nodes", fmt_count), ("Total Shards", "total_shards", fmt_count),
               ("Status", "status", fmt_status), ("Replication Factor", "replication_factor", fmt_count))
# Minimum widths reproduce the specification's grids exactly.
NODE_COLUMNS = (("Node ID", "node_id", fmt_text, 16), ("Role", "role", fmt_text, 7),
                ("Address", "address", fmt_text, 18), ("Status", "status", fmt_status, 8),
                ("Shards", "shard_count", fmt_count, 8))
SHARD_COLUMNS = (("Shard ID", "shard_id", fmt_text, 8), ("Primary Node", "primary_node", fmt_text, 15),
                 ("Replicas", "replicas", fmt_count, 11), ("Vector Count", "vector_count", fmt_count, 14),
                 ("Status", "status", fmt_status, 8))
NODE_ROWS = (("Node ID", "node_id", fmt_text), ("Role", "role", fmt_text), ("Address", "address", fmt_text),
             ("Status", "status", fmt_status), ("Shards", "shard_count", fmt_count),
             ("CPU Usage", "cpu_usage", fmt_percent), ("Memory Usage", "memory_usage", fmt_percent),
             ("Disk Usage", "disk_usage", fmt_percent), ("Uptime", "uptime_seconds", fmt_duration),
             ("Last Heartbeat", "last_heartbeat", fmt_text))
CHECK_COLUMNS = (("Check", "name", fmt_text), ("Status", "status", fmt_status), ("Detail", "detail", fmt_text))
SHARD_ROWS = (("Shard ID", "shard_id", fmt_text), ("Database", "database_id", fmt_text),
              ("Primary Node", "primary_node", fmt_text), ("Replica Nodes", "replica_nodes", fmt_text),
              ("Replicas", "replicas", fmt_count), ("Vector Count", "vector_count", fmt_count),
              ("Size", "size_bytes", fmt_bytes), ("Status", "status", fmt_status))
MIGRATION_ROWS = (("Migration ID", "migration_id", fmt_text), ("Shard ID", "shard_id", fmt_text),
                  ("Strategy", "strategy", fmt_text), ("From", "source_node", fmt_text),
                  ("To", "target_node", fmt_text), ("Status", "status", fmt_status),
                  ("Phase", "phase", fmt_text), ("Progress", "progress", fmt_percent),
                  ("Transferred", "transferred_vectors", fmt_count), ("Total Vectors", "total_vectors", fmt_count),
                  ("Started", "started_at", fmt_text), ("Finished", "finished_at", fmt_text),
                  ("Error", "error", fmt_text))
MIGRATION_COLUMNS = (("Migration ID", "migration_id", fmt_text), ("Strategy", "strategy", fmt_text),
                     ("From", "source_node", fmt_text), ("To", "target_node", fmt_text),
                     ("Status", "status", fmt_status), ("Progress", "progress", fmt_percent),
                     ("Vectors", "vectors", fmt_text))
MIGRATION_DETAIL_ROWS = (("Phase", "phase", fmt_text), ("Started", "started_at", fmt_text),
                         ("Finished", "finished_at", fmt_text), ("Error", "error", fmt_text))
METRIC_ROWS = (("CPU Usage", "cpu_usage", fmt_percent), ("Memory Usage", "memory_usage", fmt_percent),
               ("Disk Usage", "disk_usage", fmt_percent), ("Queries", "queries_per_second", fmt_rate),
               ("Avg Query Latency", "avg_query_latency_ms", fmt_ms),
               ("P99 Query Latency", "p99_query_latency_ms", fmt_ms),
               ("Total Vectors", "total_vectors", fmt_count))
NODE_METRIC_COLUMNS = (("Node ID", "node_id", fmt_text), ("CPU", "cpu_usage", fmt_percent),
                       ("Memory", "memory_usage", fmt_percent), ("Disk", "disk_usage", fmt_percent))
DIAG_NODE_COLUMNS = (("Node ID", "node_id", fmt_text), ("Role", "role", fmt_text),
                     ("Status", "status", fmt_status), ("CPU", "cpu_usage", fmt_percent),
                     ("Memory", "memory_usage", fmt_percent), ("Disk", "disk_usage", fmt_percent),
                     ("Checks", "checks_summary", fmt_text))
TOPOLOGY_ROWS = (("Master Node", "master_node", fmt_text), ("Nodes", "nodes", fmt_text))
DISTRIBUTION_COLUMNS = (("Node ID", "node_id", fmt_text), ("Shards", "shard_count", fmt_count))
REPLICATION_ROWS = (("Replication Factor", "replication_factor", fmt_count),
                    ("Under-replicated Shards", "under_replicated_shards", fmt_names))
ERROR_COLUMNS = (("Time", "timestamp", fmt_text), ("Node", "node_id", fmt_text),
                 ("Severity", "severity", fmt_status), ("Message", "message", fmt_text))
PLAN_CHECK_COLUMNS = (("Check", "name", fmt_text), ("Result", "result", fmt_status), ("Detail", "detail", fmt_text))
MIGRATION_PLAN_ROWS = (("Shard ID", "shard_id", fmt_text), ("From", "source_node", fmt_text),
                       ("To", "target_node", fmt_text), ("Strategy", "strategy", fmt_text),
                       ("Vectors To Move", "vectors_to_move", fmt_count), ("Bytes To Move", "bytes_to_move", fmt_bytes),
                       ("Would Succeed", "would_succeed", fmt_yes_no))
REMOVAL_PLAN_ROWS = (("Node ID", "node_id", fmt_text), ("Primary Shards", "primary_shards", fmt_names),
                     ("Replica Shards", "replica_shards", fmt_names),
                     ("Shards To Redistribute", "shards_to_redistribute", fmt_count),
                     ("Under-replicated After", "under_replicated_after", fmt_names),
                     ("Would Succeed", "would_succeed", fmt_yes_no))
HEALTH_ROWS = (("Status", "status", fmt_status), ("Version", "version", fmt_text))


def checks_summary(checks) -> str:
    """'4 PASS' or 'storage WARN, heartbeat FAIL': what an operator needs from a node's checks."""
    checks = [c for c in as_list(checks) if isinstance(c, dict)]
    failing = ["%s %s" % (fmt_text(field(c, "name")), fmt_text(field(c, "status")))
               for c in checks if field(c, "status") not in ("PASS", None)]
    return ", ".join(failing) if failing else ("%d PASS" % len(checks) if checks else "")


def with_checks_summary(node) -> dict:
    node = dict(as_dict(node))
    node["checks_summary"] = checks_summary(field(node, "checks"))
    return node


def plan_checks(plan) -> list:
    return [{"name": field(c, "name"), "result": "PASS" if field(c, "passed") else "FAIL",
             "detail": field(c, "detail")} for c in as_list(field(plan, "checks"))]


def table_status(data, color):
    return render_block("Cluster Status", STATUS_ROWS, data, color)


def table_node_health(data, color):
    data = as_dict(data)
    text = render_block("Node Health: %s" % fmt_text(field(data, "node_id")), NODE_ROWS, data, color)
    checks = as_list(field(data, "checks"))
    return text + section("Checks", render_grid(CHECK_COLUMNS, checks, color) if checks else "none")


def table_shard_status(data, color):
    data = as_dict(data)
    text = render_block("Shard Status: %s" % fmt_text(field(data, "shard_id")), SHARD_ROWS, data, color)
    migration = field(data, "migration")
    return text + section("Migration", render_migration_table(migration, color) if migration else "none")


def render_migration_table(migration, color) -> str:
    """The shard's latest migration: a one-row grid, then its times and error."""
    row = dict(as_dict(migration), vectors="%s/%s" % (
        fmt_count(field(migration, "transferred_vectors")), fmt_count(field(migration, "total_vectors"))))
    details = [r for r in MIGRATION_DETAIL_ROWS if field(migration, r[1]) not in (None, "")]
    return "\n".join([render_grid(MIGRATION_COLUMNS, [row], color)] +
                     ([render_rows(details, migration, color)] if details else []))


def table_migration(data, color):
    return render_block("Migration %s" % fmt_text(field(data, "migration_id")), MIGRATION_ROWS, data, color)


def table_metrics(data, color):
    data = as_dict(data)
    text = render_block("Cluster Metrics", METRIC_ROWS, data, color)
    per_node = field(data, "nodes")
    if isinstance(per_node, dict) and per_node:
        rows = [dict(as_dict(v), node_id=k) for k, v in per_node.items()]
        text += section("Nodes", render_grid(NODE_METRIC_COLUMNS, rows, color))
    return text


def table_diagnostics(data, color):
    data = as_dict(data)
    nodes = [with_checks_summary(n) for n in as_list(field(data, "nodes"))]
    distribution = [{"node_id": k, "shard_count": v} for k, v in as_dict(field(data, "shard_distribution")).items()]
    errors = as_list(field(data, "errors"))
    return "".join([
        render_block("Cluster Diagnostics", (("Generated At", "generated_at", fmt_text),), data, color),
        section("Topology", render_rows(TOPOLOGY_ROWS, as_dict(field(data, "topology")), color)),
        section("Node Health", render_grid(DIAG_NODE_COLUMNS, nodes, color) if nodes else "none"),
        section("Shard Distribution", render_grid(DISTRIBUTION_COLUMNS, distribution, color)
                if distribution else "none"),
        section("Replication", render_rows(REPLICATION_ROWS, as_dict(field(data, "replication")), color)),
        section("Performance", render_rows(METRIC_ROWS, as_dict(field(data, "performance")), color)),
        section("Errors", render_grid(ERROR_COLUMNS, errors, color) if errors else "none"),
    ])


def table_node_added(data, color):
    message = fmt_text(field(data, "message"))
    return "Node %s (%s) added: %s%s" % (
        fmt_text(field(data, "node_id")), fmt_text(field(data, "address")),
        cell(data, "status", fmt_status, color), " (%s)" % message if message else "")


def table_node_removed(data, color):
    return "Node %s removed: %s redistributed" % (
        fmt_text(field(data, "node_id")), shards_phrase(field(data, "shards_redistributed")))


def shards_phrase(count) -> str:
    return "%s shard%s" % (fmt_count(count), "" if number(count) == 1 else "s")


def table_migration_started(data, color):
    return "Migration %s started: %s %s -> %s (%s)" % tuple(
        fmt_text(field(data, name)) for name in
        ("migration_id", "shard_id", "source_node", "target_node", "strategy"))


def table_migration_plan(data, color):
    text = render_block("Dry run: migrate %s" % fmt_text(field(data, "shard_id")), MIGRATION_PLAN_ROWS, data, color)
    return text + section("Checks", render_grid(PLAN_CHECK_COLUMNS, plan_checks(data), color))


def table_removal_plan(data, color):
    text = render_block("Dry run: remove %s" % fmt_text(field(data, "node_id")), REMOVAL_PLAN_ROWS, data, color)
    return text + section("Checks", render_grid(PLAN_CHECK_COLUMNS, plan_checks(data), color))


def table_health(data, color):
    return render_block("Health", HEALTH_ROWS, data, color)


def compact_status(data, color):
    return "%s | %s nodes | %s shards | master: %s" % (
        cell(data, "status", fmt_status, color), fmt_count(field(data, "total_nodes")),
        fmt_count(field(data, "total_shards")), fmt_text(field(data, "master_node")))


def compact_rows(columns):
    def render(data, color):
        return "\n".join(compact_line(row, columns, color) for row in as_list(data))
    return render


def compact_node_health(data, color):
    return "%s | %s | cpu %s | mem %s | disk %s | checks: %s" % (
        fmt_text(field(data, "node_id")), cell(data, "status", fmt_status, color),
        fmt_percent(field(data, "cpu_usage")), fmt_percent(field(data, "memory_usage")),
        fmt_percent(field(data, "disk_usage")), checks_summary(field(data, "checks")))


def compact_shard_status(data, color):
    line = "%s | %s | primary: %s | %s vectors" % (
        fmt_text(field(data, "shard_id")), cell(data, "status", fmt_status, color),
        fmt_text(field(data, "primary_node")), fmt_count(field(data, "vector_count")))
    migration = field(data, "migration")
    if migration:
        line += " | migration: %s %s %s" % (fmt_text(field(migration, "migration_id")),
                                            cell(migration, "status", fmt_status, color),
                                            fmt_percent(field(migration, "progress")))
    return line


def compact_migration(data, color):
    return "%s | %s | %s -> %s | %s | %s | %s" % (
        fmt_text(field(data, "migration_id")), fmt_text(field(data, "shard_id")),
        fmt_text(field(data, "source_node")), fmt_text(field(data, "target_node")),
        fmt_text(field(data, "strategy")), cell(data, "status", fmt_status, color),
        fmt_percent(field(data, "progress")))


def compact_metrics(data, color):
    return "cpu %s | mem %s | disk %s | queries %s | p99 %s | %s vectors" % tuple(
        formatter(field(data, name)) for name, formatter in (
            ("cpu_usage", fmt_percent), ("memory_usage", fmt_percent), ("disk_usage", fmt_percent),
            ("queries_per_second", fmt_rate), ("p99_query_latency_ms", fmt_ms), ("total_vectors", fmt_count)))


def compact_diagnostics(data, color):
    replication = as_dict(field(data, "replication"))
    errors = as_list(field(data, "errors"))
    nodes = as_list(field(data, "nodes"))
    lines = ["master: %s | %d nodes | %d under-replicated shards | %d errors" % (
        fmt_text(field(as_dict(field(data, "topology")), "master_node")), len(nodes),
        len(as_list(field(replication, "under_replicated_shards"))), len(errors))]
    lines.extend(compact_line(with_checks_summary(n), DIAG_NODE_COLUMNS, color) for n in nodes)
    lines.extend(compact_line(e, ERROR_COLUMNS, color) for e in errors)
    return "\n".join(lines)


def compact_node_added(data, color):
    return "%s | %s | %s" % (fmt_text(field(data, "node_id")), cell(data, "status", fmt_status, color),
                             fmt_text(field(data, "address")))


def compact_node_removed(data, color):
    return "%s | removed | %s redistributed" % (
        fmt_text(field(data, "node_id")), shards_phrase(field(data, "shards_redistributed")))


def compact_plan(what):
    def render(data, color):
        verdict = "would succeed" if field(data, "would_succeed") else "would fail"
        failed = [fmt_text(field(c, "detail")) for c in as_list(field(data, "checks")) if not field(c, "passed")]
        if what == "migration":
            line = "%s | migrate %s | %s -> %s | %s vectors | %s" % (
                verdict, fmt_text(field(data, "shard_id")), fmt_text(field(data, "source_node")),
                fmt_text(field(data, "target_node")), fmt_count(field(data, "vectors_to_move")),
                fmt_bytes(field(data, "bytes_to_move")))
        else:
            line = "%s | remove %s | %s shards to redistribute | under-replicated after: %s" % (
                verdict, fmt_text(field(data, "node_id")), fmt_count(field(data, "shards_to_redistribute")),
                fmt_names(field(data, "under_replicated_after")))
        return line + "".join(" | " + reason for reason in failed)
    return render


def compact_health(data, color):
    return "%s | %s" % (cell(data, "status", fmt_status, color), fmt_text(field(data, "version")))


TABLE_VIEWS = {
    "status": table_status, "health": table_health,
    "nodes": lambda data, color: render_grid(NODE_COLUMNS, as_list(data), color),
    "shards": lambda data, color: render_grid(SHARD_COLUMNS, as_list(data), color),
    "node-health": table_node_health, "shard-status": table_shard_status,
    "metrics": table_metrics, "diagnostics": table_diagnostics,
    "node-added": table_node_added, "node-removed": table_node_removed,
    "migration-started": table_migration_started, "migration": table_migration,
    "migration-plan": table_migration_plan, "removal-plan": table_removal_plan,
}
COMPACT_VIEWS = {
    "status": compact_status, "health": compact_health,
    "nodes": compact_rows(NODE_COLUMNS), "shards": compact_rows(SHARD_COLUMNS),
    "node-health": compact_node_health, "shard-status": compact_shard_status,
    "metrics": compact_metrics, "diagnostics": compact_diagnostics,
    "node-added": compact_node_added, "node-removed": compact_node_removed,
    "migration-started": compact_migration, "migration": compact_migration,
    "migration-plan": compact_plan("migration"), "removal-plan": compact_plan("removal"),
}


def render_json(view: str, data, color: bool = False) -> str:
    """The server's objects unchanged, indented (never coloured)."""
    import json
    return json.dumps(data, indent=2)


def render_table(view: str, data, color: bool = False) -> str:
    """Human-readable blocks and grids, as the specification shows them."""
    return TABLE_VIEWS[view](data, color)


def render_compact(view: str, data, color: bool = False) -> str:
    """One line per object, fields joined by ' | ', for grep and awk."""
    return COMPACT_VIEWS[view](data, color)


FORMATS = {"json": render_json, "table": render_table, "compact": render_compact}


# ---------------------------------------------------------------------------
# Workflows: plans, waits and progress (used by the command handlers)
# ---------------------------------------------------------------------------

class Result:
    """What a handler hands to main(): data to print, and how the run ends."""

    def __init__(self, data, view: str = None, exit_code: int = EXIT_OK, message: str = None):
        self.data, self.view, self.exit_code, self.message = data, view, exit_code, message


def holders(shard) -> list:
    replicas = field(shard, "replica_nodes")
    return [field(shard, "primary_node")] + (replicas if isinstance(replicas, list) else [])


def _check(name: str, passed: bool, detail: str) -> dict:
    return {"name": name, "passed": bool(passed), "detail": detail}


def plan_migration(client: ClusterCLI, shard_id: str, target: str, source: str = None,
                   strategy: str = "LIVE_COPY") -> dict:
    """What migrate-shard would do and whether the cluster would accept it (reads only)."""
    shard = client.shard_status(shard_id)
    nodes = {field(n, "node_id"): n for n in client.list_nodes()}
    primary = field(shard, "primary_node")
    source = source or primary
    target_status = field(nodes.get(target), "status")
    migration = field(shard, "migration")
    running = field(migration, "status") in RUNNING_MIGRATION
    checks = [
        _check("source holds the primary", source == primary,
               "%s's primary is on %s" % (shard_id, primary)),
        _check("target exists", target in nodes,
               "%s is in the cluster" % target if target in nodes else "%s is not in the cluster" % target),
        _check("target is healthy", target_status == "HEALTHY", "%s is %s" % (target, target_status or "unknown")),
        _check("target holds no copy", target not in holders(shard),
               ("%s already holds a copy of %s" if target in holders(shard) else "%s holds no copy of %s")
               % (target, shard_id)),
        _check("no migration running", not running,
               "migration %s is %s" % (field(migration, "migration_id"), field(migration, "status"))
               if running else "no migration of %s is running" % shard_id),
    ]
    return {"dry_run": True, "action": "migrate-shard", "shard_id": shard_id, "source_node": source,
            "target_node": target, "strategy": strategy,
            "vectors_to_move": field(shard, "vector_count"), "bytes_to_move": field(shard, "size_bytes"),
            "checks": checks, "would_succeed": all(c["passed"] for c in checks)}


def plan_node_removal(client: ClusterCLI, node_id: str) -> dict:
    """What remove-node would do to the shards and whether the cluster would accept it (reads only)."""
    status = client.cluster_status()
    nodes = {field(n, "node_id"): n for n in client.list_nodes()}
    node = nodes.get(node_id)
    live = {n for n, v in nodes.items() if field(v, "status") not in DOWN_NODE_STATUSES and n != node_id}
    movable_to = {n for n in live if field(nodes[n], "status") in ("HEALTHY", "DEGRADED")}
    factor = number(field(status, "replication_factor")) or 1
    shards = [s for s in client.list_shards(node_id=node_id) if node_id in holders(s)]
    stranded, under_after = [], []
    for shard in shards:
        others = [n for n in holders(shard) if n in live]
        if not others:
            stranded.append(field(shard, "shard_id"))
        new_home = bool(movable_to - set(holders(shard)))
        if len(others) + new_home < factor:
            under_after.append(field(shard, "shard_id"))
    is_master = field(node, "role") == "MASTER" or node_id == field(status, "master_node")
    checks = [
        _check("node exists", node is not None,
               "%s is in the cluster" % node_id if node else "%s is not in the cluster" % node_id),
        _check("not the master", not is_master, "%s is %sthe master" % (node_id, "" if is_master else "not ")),
        _check("not the last node", len(nodes) > 1, "%d nodes in the cluster" % len(nodes)),
        _check("every shard keeps a live copy", not stranded,
               "no other live copy of: " + ", ".join(stranded) if stranded else
               "each of its %d shards has a live copy elsewhere" % len(shards)),
    ]
    return {"dry_run": True, "action": "remove-node", "node_id": node_id,
            "primary_shards": [field(s, "shard_id") for s in shards if field(s, "primary_node") == node_id],
            "replica_shards": [field(s, "shard_id") for s in shards if field(s, "primary_node") != node_id],
            "shards_to_redistribute": len(shards), "under_replicated_after": under_after,
            "checks": checks, "would_succeed": all(c["passed"] for c in checks)}


def plan_result(plan: dict, view: str) -> Result:
    if plan["would_succeed"]:
        return Result(plan, view)
    reasons = "; ".join(c["detail"] for c in plan["checks"] if not c["passed"])
    return Result(plan, view, EXIT_FAILED, "the cluster would refuse this: " + reasons)


def is_tty(stream) -> bool:
    try:
        return bool(stream) and stream.isatty()
    except (AttributeError, ValueError, OSError):
        return False


def transient(exc: ClusterError) -> bool:
    """A failure worth polling through: the cluster may be back in a moment."""
    return isinstance(exc, (ClusterUnreachable, BadResponse)) or (
        isinstance(exc, ApiError) and exc.status_code >= 500)


class ProgressBar:
    """A one-line migration progress bar on stderr, drawn only on a terminal."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.enabled = is_tty(self.stream)
        self.first = None

    def update(self, migration) -> None:
        if not self.enabled:
            return
        percent = finite(field(migration, "progress"))
        done = finite(field(migration, "transferred_vectors"))
        total = finite(field(migration, "total_vectors"))
        now = time.monotonic()
        if self.first is None:
            self.first = (now, done)
        elapsed, moved = now - self.first[0], done - self.first[1]
        rate = moved / elapsed if elapsed > 0 and moved > 0 else 0.0
        eta = fmt_duration((total - done) / rate) if rate and total >= done else "?"
        filled = int(min(100.0, max(0.0, percent)) / 5)
        self.stream.write("\r[%s%s] %5.1f%%  %s/%s vectors  %s vectors/s  ETA %s\x1b[K" % (
            "#" * filled, "-" * (20 - filled), percent, fmt_count(done), fmt_count(total),
            fmt_count(int(rate)), eta))
        self.stream.flush()

    def close(self) -> None:
        if self.enabled and self.first is not None:
            self.stream.write("\n")
            self.stream.flush()


def wait_for_migration(client: ClusterCLI, shard_id: str, migration: dict, timeout: float,
                       interval: float) -> Result:
    """Poll the shard until this migration ends, or the wait times out (exit 4)."""
    migration_id = field(migration, "migration_id")
    deadline = time.monotonic() + timeout
    bar = ProgressBar()
    latest, last_error = migration, None
    try:
        while True:
            try:
                current = field(client.shard_status(shard_id), "migration")
                if isinstance(current, dict) and field(current, "migration_id") in (migration_id, None):
                    latest = current
                last_error = None
            except ClusterError as exc:
                if not transient(exc):
                    raise
                last_error = exc
            bar.update(latest)
            state = field(latest, "status")
            if state == "COMPLETED":
                return Result(latest, "migration")
            if state == "FAILED":
                return Result(latest, "migration", EXIT_FAILED, "migration %s of %s FAILED: %s" % (
                    migration_id, shard_id, fmt_text(field(latest, "error")) or "no reason given"))
            if time.monotonic() + interval > deadline:
                break
            time.sleep(interval)
    finally:
        bar.close()
    message = "migration %s of %s is still %s after %gs; it goes on: check it with " \
              "'cluster_cli.py shard-status --shard-id %s'" % (migration_id, shard_id, state, timeout, shard_id)
    if last_error:
        message += " (last poll: %s)" % last_error
    return Result(latest, "migration", EXIT_CONDITION, message)


def wait_for_status(client: ClusterCLI, wanted: str, timeout: float, interval: float) -> Result:
    """Poll the cluster status until it is `wanted`, or the wait times out (exit 4)."""
    deadline = time.monotonic() + timeout
    status, last_error = None, None
    while True:
        try:
            status = client.cluster_status()
            last_error = None
            if field(status, "status") == wanted:
                return Result(status)
        except ClusterError as exc:
            if not transient(exc):
                raise
            last_error = exc
        if time.monotonic() + interval > deadline:
            break
        time.sleep(interval)
    if status is None:
        raise ConditionNotMet("cluster did not become %s within %gs (%s)" % (wanted, timeout, last_error))
    return Result(status, None, EXIT_CONDITION, "cluster is %s, not %s, after %gs" % (
        fmt_text(field(status, "status")) or "unknown", wanted, timeout))


def confirm(question: str) -> bool:
    """Ask on the terminal; anything but y/yes (or end of input) is no."""
    sys.stderr.write(question + " [y/N] ")
    sys.stderr.flush()
    answer = sys.stdin.readline()
    return answer.strip().lower() in ("y", "yes")


# ---------------------------------------------------------------------------
# Commands: one handler each; the docstring is the help text
# ---------------------------------------------------------------------------

def cmd_status(client, args):
    """Show the cluster's health, size and master node.

    example: cluster_cli.py status --format compact
             cluster_cli.py status --check          (exit 4 unless HEALTHY)
             cluster_cli.py status --wait-for HEALTHY --wait-timeout 300
    """
    if args.wait_for:
        return wait_for_status(client, args.wait_for, args.wait_timeout, args.poll_interval)
    status = client.cluster_status()
    if args.check and field(status, "status") != "HEALTHY":
        return Result(status, None, EXIT_CONDITION,
                      "cluster is %s, not HEALTHY" % (fmt_text(field(status, "status")) or "unknown"))
    return status


def cmd_diagnostics(client, args):
    """Show topology, node health, shard distribution, replication, performance and errors.

    example: cluster_cli.py diagnostics --format json | jq '.errors'
    """
    return client.diagnostics()


def cmd_metrics(client, args):
    """Show cluster-wide and per-node performance and resource metrics.

    example: cluster_cli.py metrics --format json | jq -r '.cpu_usage'
    """
    return client.metrics()


def cmd_nodes(client, args):
    """List the cluster's nodes.

    example: cluster_cli.py nodes --status UNREACHABLE --format compact
    """
    nodes = client.list_nodes()
    if args.status or args.role:
        nodes = [n for n in nodes if (not args.status or field(n, "status") == args.status)
                 and (not args.role or field(n, "role") == args.role)]
    return nodes


def cmd_add_node(client, args):
    """Add a node to the cluster (it is JOINING, then HEALTHY).

    example: cluster_cli.py add-node --node-id node-worker-003 --address 192.168.1.13:8080
    """
    return Result(client.add_node(args.node_id, args.address), "node-added")


def cmd_remove_node(client, args):
    """Remove a node; its shards are redistributed to the remaining nodes.

    On a terminal it shows the impact and asks first (--yes skips the question).
    example: cluster_cli.py remove-node --node-id node-worker-003 --dry-run
    """
    node_id = require_id(args.node_id, "--node-id")
    if args.dry_run:
        return plan_result(plan_node_removal(client, node_id), "removal-plan")
    if not args.yes and is_tty(sys.stdin):
        plan = plan_node_removal(client, node_id)
        sys.stderr.write(render_table("removal-plan", plan) + "\n")
        refused = plan_result(plan, "removal-plan")
        if refused.exit_code:
            raise ClusterError(refused.message + "; nothing was removed")
        if not confirm("Remove node %s?" % node_id):
            raise ClusterError("aborted; node %s was not removed" % node_id)
    return Result(client.remove_node(node_id), "node-removed")


def cmd_node_health(client, args):
    """Show one node's health, resource use and checks.

    example: cluster_cli.py node-health --node-id node-worker-001
    """
    return client.node_health(args.node_id)


def cmd_shards(client, args):
    """List shards, optionally only those of a database, a node or a status.

    example: cluster_cli.py shards --format json | jq '[.[] | select(.replicas < 2)]'
    """
    shards = client.list_shards(args.database_id, args.node_id, args.status)
    # Filter here too, in case a server ignores the query parameters.
    if args.database_id or args.node_id or args.status:
        shards = [s for s in shards if (not args.database_id or field(s, "database_id") == args.database_id)
                  and (not args.node_id or args.node_id in holders(s))
                  and (not args.status or field(s, "status") == args.status)]
    return shards


def cmd_shard_status(client, args):
    """Show one shard and its latest migration.

    example: cluster_cli.py shard-status --shard-id shard-00
    """
    return client.shard_status(args.shard_id)


def cmd_migrate_shard(client, args):
    """Move a shard's primary copy to another node.

    Strategies: LIVE_COPY (zero downtime), SNAPSHOT (brief read-only switchover),
    INCREMENTAL (incremental sync, final switchover).
    example: cluster_cli.py migrate-shard --shard-id shard-00 --from-node node-worker-001 \\
               --to-node node-worker-003 --strategy LIVE_COPY --wait
    """
    shard_id = require_id(args.shard_id, "--shard-id")
    target = require_id(args.to_node, "--to-node")
    source = None if args.from_node is None else require_id(args.from_node, "--from-node")
    strategy = check_strategy(args.strategy)
    if args.dry_run:
        return plan_result(plan_migration(client, shard_id, target, source, strategy), "migration-plan")
    if source is not None:
        primary = field(client.shard_status(shard_id), "primary_node")
        if primary is not None and primary != source:
            raise ClusterError("%s's primary is on %s, not %s; no migration was started"
                               % (shard_id, primary, source))
    migration = client.migrate_shard(shard_id, target, source, strategy)
    if not args.wait:
        return Result(migration, "migration-started")
    return wait_for_migration(client, shard_id, migration, args.wait_timeout, args.poll_interval)


def cmd_health(client, args):
    """Check that the node this CLI talks to is alive (GET /health).

    example: cluster_cli.py health --format compact
    """
    return client.health()


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------

def terminal_columns() -> int:
    """shutil.get_terminal_size().columns, without importing shutil (and bz2, lzma) on every run."""
    try:
        columns = int(os.environ.get("COLUMNS", 0))
    except ValueError:
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns or 80


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """argparse's formatter, keeping the docstrings' line breaks; argparse makes
    one per option added, and would import shutil each time to size it."""

    def __init__(self, prog, **kwargs):
        kwargs.setdefault("width", terminal_columns() - 2)
        super().__init__(prog, **kwargs)


class Parser(argparse.ArgumentParser):
    """argparse, with its errors as one line on stderr and exit code 2.

    Abbreviations are off: '--ho' must not quietly mean '--host'.
    """

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message):
        raise InvalidInput("%s (see '%s --help')" % (message, self.prog))


def _positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("%r is not a number of seconds" % text) from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError("%r must be a positive number of seconds" % text)
    return value


def _non_negative_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("%r is not a whole number" % text) from None
    if value < 0:
        raise argparse.ArgumentTypeError("%r must be 0 or more" % text)
    return value


def _port(text):
    try:
        return parse_port(text, "port")
    except InvalidInput as exc:
        raise argparse.ArgumentTypeError(exc.message.split(": ", 1)[1]) from None


def add_global_options(parser, suppress: bool) -> None:
    """The options every command takes, before or after its name.

    After the command, defaults are SUPPRESSed so they never overwrite a
    value given before it; the last occurrence wins.
    """
    def default(value):
        return argparse.SUPPRESS if suppress else value

    group = parser.add_argument_group("connection and output (before or after the command)")
    group.add_argument("--host", default=default(None), metavar="HOST[,HOST...]",
                       help="master node(s), host or host:port, comma-separated, tried in order "
                            "(env %s; default %s)" % (ENV_HOST, DEFAULT_HOST))
    group.add_argument("--port", type=_port, default=default(None),
                       help="API port for hosts given without one (env %s; default %d)" % (ENV_PORT, DEFAULT_PORT))
    group.add_argument("--url", default=default(None), metavar="URL[,URL...]",
                       help="full base URL(s) such as https://jade.example:8443; overrides --host/--port "
                            "(env %s)" % ENV_URL)
    group.add_argument("--format", choices=FORMATS, default=default(None),
                       help="output format (env %s; default %s)" % (ENV_FORMAT, DEFAULT_FORMAT))
    group.add_argument("--api-key", default=default(None), metavar="KEY",
                       help="API key, sent as 'Authorization: Bearer KEY' (env %s)" % ENV_API_KEY)
    group.add_argument("--timeout", type=_positive_float, default=default(DEFAULT_TIMEOUT), metavar="SECONDS",
                       help="connect and read timeout per request (default %g)" % DEFAULT_TIMEOUT)
    group.add_argument("--retries", type=_non_negative_int, default=default(DEFAULT_RETRIES), metavar="N",
                       help="retries of a GET after a connection failure or 502/503/504; "
                            "POST and DELETE are never retried (default %d)" % DEFAULT_RETRIES)
    group.add_argument("--ca-cert", default=default(None), metavar="PATH",
                       help="CA bundle to verify the cluster's TLS certificate with")
    group.add_argument("--insecure", action="store_true", default=default(False),
                       help="do not verify TLS certificates (prints a warning)")
    group.add_argument("--no-color", action="store_true", default=default(False),
                       help="never colour status words (also: NO_COLOR=1)")
    group.add_argument("-v", "--verbose", action="store_true", default=default(False),
                       help="log each request, its status and time on stderr (the key is never shown)")
    group.add_argument("--version", action="version", version="%(prog)s " + __version__)


def add_watch_option(parser) -> None:
    parser.add_argument("--watch", type=_positive_float, nargs="?", const=DEFAULT_WATCH_INTERVAL,
                        metavar="SECONDS", help="repeat every SECONDS (default %g) until Ctrl-C; JSON "
                        "snapshots are one line each when not on a terminal" % DEFAULT_WATCH_INTERVAL)
    parser.add_argument("--count", type=_non_negative_int, default=0, metavar="N",
                        help="with --watch: stop after N snapshots")


def add_wait_options(parser, what: str) -> None:
    parser.add_argument("--wait-timeout", type=_positive_float, default=DEFAULT_WAIT_TIMEOUT, metavar="SECONDS",
                        help="give up waiting for %s after SECONDS, exit 4 (default %g)" % (what, DEFAULT_WAIT_TIMEOUT))
    parser.add_argument("--poll-interval", type=_positive_float, default=DEFAULT_POLL_INTERVAL, metavar="SECONDS",
                        help="seconds between polls while waiting (default %g)" % DEFAULT_POLL_INTERVAL)


def status_options(sub) -> None:
    sub.add_argument("--check", action="store_true", help="exit 4 unless the cluster is HEALTHY")
    sub.add_argument("--wait-for", type=str.upper, choices=CLUSTER_STATUSES, metavar="STATUS",
                     help="poll until the cluster is STATUS (%s)" % ", ".join(CLUSTER_STATUSES))
    add_wait_options(sub, "the status")
    add_watch_option(sub)


def nodes_options(sub) -> None:
    # A mistyped status would match nothing and read as "all clear": only the contract's are accepted.
    sub.add_argument("--status", type=str.upper, choices=NODE_STATUSES, metavar="STATUS",
                     help="only nodes with this status: %s" % ", ".join(NODE_STATUSES))
    sub.add_argument("--role", type=str.upper, choices=("MASTER", "WORKER"), help="only nodes with this role")
    add_watch_option(sub)


def add_node_options(sub) -> None:
    sub.add_argument("--node-id", required=True, help="ID of the new node")
    sub.add_argument("--address", required=True, metavar="HOST:PORT", help="address the node serves on")


def remove_node_options(sub) -> None:
    sub.add_argument("--node-id", required=True, help="ID of the node to remove")
    sub.add_argument("--dry-run", action="store_true", help="show the impact; change nothing")
    sub.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")


def node_health_options(sub) -> None:
    sub.add_argument("--node-id", required=True, help="ID of the node")


def shards_options(sub) -> None:
    sub.add_argument("--database-id", help="only shards of this database")
    sub.add_argument("--node-id", help="only shards with a copy (primary or replica) on this node")
    sub.add_argument("--status", type=str.upper, choices=SHARD_STATUSES, metavar="STATUS",
                     help="only shards with this status: %s" % ", ".join(SHARD_STATUSES))
    add_watch_option(sub)


def shard_status_options(sub) -> None:
    sub.add_argument("--shard-id", required=True, help="ID of the shard")
    add_watch_option(sub)


def migrate_shard_options(sub) -> None:
    sub.add_argument("--shard-id", required=True, help="ID of the shard to move")
    sub.add_argument("--to-node", required=True, help="node to move it to")
    sub.add_argument("--from-node", help="node it is on now (its primary); checked before anything is sent")
    sub.add_argument("--strategy", type=str.upper, default="LIVE_COPY", choices=STRATEGIES,
                     help="how to move it (default LIVE_COPY)")
    sub.add_argument("--dry-run", action="store_true", help="check whether it would be accepted; change nothing")
    sub.add_argument("--wait", action="store_true", help="wait for the migration to end, with progress on a terminal")
    add_wait_options(sub, "the migration")


# name -> (handler, function adding its own options)
COMMANDS = {
    "status": (cmd_status, status_options),
    "diagnostics": (cmd_diagnostics, None),
    "metrics": (cmd_metrics, add_watch_option),
    "nodes": (cmd_nodes, nodes_options),
    "add-node": (cmd_add_node, add_node_options),
    "remove-node": (cmd_remove_node, remove_node_options),
    "node-health": (cmd_node_health, node_health_options),
    "shards": (cmd_shards, shards_options),
    "shard-status": (cmd_shard_status, shard_status_options),
    "migrate-shard": (cmd_migrate_shard, migrate_shard_options),
    "health": (cmd_health, None),
}


def build_parser(argv=None) -> argparse.ArgumentParser:
    """The parser; with argv, only the commands named in it get their options
    (an operator runs one command, and pays for one)."""
    parser = Parser(prog="cluster_cli.py", description=__doc__.splitlines()[0],
                    epilog="exit codes: 0 ok, 1 the cluster refused or failed the request, 2 invalid "
                           "usage or input, 3 cluster unreachable, 4 condition not met, 130 interrupted")
    add_global_options(parser, suppress=False)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    commands.required = True
    named = None if argv is None else set(argv)
    for name, (handler, add_options) in COMMANDS.items():
        doc = "\n".join(line[4:] if line.startswith("    ") else line for line in handler.__doc__.splitlines())
        sub = commands.add_parser(name, help=doc.splitlines()[0], description=doc.strip())
        sub.set_defaults(func=handler, view=name)
        if named is None or name in named:
            add_global_options(sub, suppress=True)
            if add_options:
                add_options(sub)
    return parser


def settings_from(args) -> dict:
    """Connection settings: a flag beats its environment variable, which beats the default."""
    env = os.environ
    api_key = args.api_key if args.api_key is not None else env.get(ENV_API_KEY) or None
    fmt = args.format or env.get(ENV_FORMAT) or DEFAULT_FORMAT
    if fmt not in FORMATS:
        raise InvalidInput("%s must be one of %s, got %r" % (ENV_FORMAT, ", ".join(FORMATS), fmt))
    url = args.url
    if url is None and args.host is None and args.port is None:
        url = env.get(ENV_URL) or None
    port = args.port
    if port is None:
        port = parse_port(env[ENV_PORT], ENV_PORT) if env.get(ENV_PORT) else DEFAULT_PORT
    host = args.host if args.host is not None else env.get(ENV_HOST) or DEFAULT_HOST
    verify = False if args.insecure else (args.ca_cert or True)
    if args.ca_cert and not args.insecure and not os.path.isfile(args.ca_cert):
        raise InvalidInput("--ca-cert: no such file: %s" % args.ca_cert)
    return {"host": host, "port": port, "url": url, "api_key": api_key, "timeout": args.timeout,
            "retries": args.retries, "verify": verify, "format": fmt}


def report(message: str) -> None:
    """One line on stderr: control characters from input or a server are escaped, not obeyed."""
    if not message.isprintable():
        message = "".join(c if c.isprintable() else repr(c)[1:-1] for c in message)
    sys.stderr.write("error: %s\n" % message)


def warn(message: str) -> None:
    sys.stderr.write("warning: %s\n" % message)


def key_over_plain_http(base_urls) -> list:
    """The http:// URLs, other than loopback ones, that would carry the key in clear."""
    import ipaddress
    from urllib.parse import urlsplit
    exposed = []
    for url in base_urls:
        parts = urlsplit(url)
        if parts.scheme != "http" or parts.hostname == "localhost":
            continue
        try:
            if ipaddress.ip_address(parts.hostname).is_loopback:
                continue
        except ValueError:
            pass
        exposed.append(url)
    return exposed


def use_colour(args) -> bool:
    return not args.no_color and not os.environ.get("NO_COLOR") and is_tty(sys.stdout)


def render(result, args, color: bool) -> str:
    return FORMATS[args.format](result.view or args.view, result.data, color)


def as_result(outcome) -> Result:
    return outcome if isinstance(outcome, Result) else Result(outcome)


def write(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def watch(client, args, color: bool) -> int:
    """Repeat a read-only command: redraw on a terminal, one snapshot per interval otherwise."""
    on_terminal = is_tty(sys.stdout)
    snapshots = 0
    try:
        while True:
            try:
                result = as_result(args.func(client, args))
            except ClusterError as exc:
                if not transient(exc):
                    raise
                report("%s (still watching)" % exc)
            else:
                if on_terminal:
                    header = "Every %gs: %s    %s\n\n" % (args.watch, args.command, time.strftime("%Y-%m-%d %H:%M:%S"))
                    write("\x1b[H\x1b[2J" + header + render(result, args, color) + "\n")
                elif args.format == "json":
                    import json
                    write(json.dumps(result.data) + "\n")
                else:  # compact stays one line per object; tables get a blank line between
                    write(render(result, args, color) + ("\n\n" if args.format == "table" else "\n"))
            snapshots += 1
            if args.count and snapshots >= args.count:
                return EXIT_OK
            time.sleep(args.watch)
    except KeyboardInterrupt:
        return EXIT_OK


class verbose_logging:
    """With --verbose, the client's request log goes to stderr for this run only."""

    def __init__(self, enabled: bool):
        self.enabled, self.handler = enabled, None

    def __enter__(self):
        if self.enabled:
            import logging
            self.handler = logging.StreamHandler(sys.stderr)
            self.handler.setFormatter(logging.Formatter("%(message)s"))
            logger = logging.getLogger("cluster_cli")
            logger.addHandler(self.handler)
            logger.setLevel(logging.DEBUG)
        return self

    def __exit__(self, *exc_info):
        if self.handler is not None:
            import logging
            logging.getLogger("cluster_cli").removeHandler(self.handler)


def run(args) -> int:
    settings = settings_from(args)
    args.format = settings.pop("format")
    if settings["verify"] is False:
        warn("TLS certificate verification is off (--insecure); the cluster's identity is not checked")
    with verbose_logging(args.verbose), ClusterCLI(**settings) as client:
        if settings["api_key"]:
            for url in key_over_plain_http(client.base_urls):
                warn("the API key is sent unencrypted to %s; use an https:// --url" % url)
        color = use_colour(args)
        if getattr(args, "watch", None):
            return watch(client, args, color)
        result = as_result(args.func(client, args))
        if result.data is not None:
            with collector_paused():
                write(render(result, args, color) + "\n")
        if result.message:
            report(result.message)
        return result.exit_code


def main(argv=None) -> int:
    """Run the CLI; returns the process exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = None
    try:
        args = build_parser(argv).parse_args(argv)
        return run(args)
    except ClusterError as exc:
        report(redact(str(exc), argv))
        return exc.exit_code
    except SystemExit as exc:  # --help and --version: main() returns, it does not exit
        return exc.code if isinstance(exc.code, int) else EXIT_OK
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return EXIT_INTERRUPTED
    except ModuleNotFoundError as exc:
        report("the Python package %r is not installed; run: pip install -r requirements.txt" % exc.name)
        return EXIT_FAILED
    except BrokenPipeError:
        # The reader (| head) has what it wanted; say nothing more.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError, AttributeError):
            pass
        return EXIT_OK
    except Exception as exc:  # a bug: one line, and the trace only when asked for
        if getattr(args, "verbose", False):
            import traceback
            sys.stderr.write(redact(traceback.format_exc(), argv))
        report(redact("unexpected %s: %s (rerun with --verbose for the trace)" % (type(exc).__name__, exc), argv))
        return EXIT_FAILED


def redact(text: str, argv) -> str:
    """Remove the API key (from the command line or the environment) from anything printed."""
    keys = [os.environ.get(ENV_API_KEY)]
    for i, arg in enumerate(argv):
        if arg == "--api-key" and i + 1 < len(argv):
            keys.append(argv[i + 1])
        elif arg.startswith("--api-key="):
            keys.append(arg[len("--api-key="):])
    for key in keys:
        if key and len(key) >= 4:  # a shorter "key" would garble the message, and hides nothing
            text = text.replace(key, "***")
    return text


if __name__ == "__main__":
    sys.exit(main())
