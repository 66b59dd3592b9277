#!/usr/bin/env python3
"""Manage a JadeVectorDB cluster: status, nodes, shards, migrations, diagnostics.

    python cluster_cli.py --host localhost --port 8080 status
    python cluster_cli.py nodes --format json | jq -r '.[].node_id'
    python cluster_cli.py migrate-shard --shard-id shard-00 --to-node node-worker-003 --wait

The module is in two halves, each section under its banner, each definition
after what it uses (the client and the planners it calls excepted):

THE LIBRARY (ClusterCLI and what it needs; nothing reads argv, asks or prints)
    Errors                  ClusterError and its subclasses, each with its exit code
    Input checks            check_*: every argument, before anything is sent
    Values from the cluster field(), number(), FIELD_KINDS: what each contract field is
    Decoding answers        decode(): status, body and size to data or a ClusterError
    Transport               connections that know whether a request left
    Plans                   rebalance, drain and dry-run plans, pure functions
    Waiting                 rounds() and poll_until(): the one polling rhythm
    Contexts and settings   the contexts file, Source and resolve(): which setting wins
    The wire                _Transport: deadline, retries, failover, redirects, proxies
    The client              ClusterCLI: one method per endpoint, from_context()

THE COMMAND LINE (flags and environment in, results on stdout, the rest on stderr)
    Writing                 stdout, stderr, secrets kept out, --output written safely
    Formatting values       fmt_*: one per kind of value
    Views                   VIEWS: what each result looks like, one record each
    Formats                 FORMATS: one writer per --format, writing to a stream
    Shaping                 --columns, --sort-by, --no-headers
    Workflows               waits, progress, confirmation, plans carried out, --watch
    Settings from the command line  flags and environment as Sources, the Output
    Options and the parser  @command records; the parser built for the chosen command
    Commands                cmd_*: each declared once beside its handler
    Completion              the bash, zsh and fish scripts, and the words they ask for
    Running a command       run(), main(): the exit code each error carries

No library definition refers to a name of the command line (tests/test_layout.py checks it).
"""


from __future__ import annotations
import argparse
import os
import re
import sys
import time
from contextlib import contextmanager
TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations are strings at run time: no typing import on start-up
    from typing import Any, Callable, Optional, Sequence, Union
__version__ = "1.1.0"
__all__ = ["ClusterCLI", "ClusterError", "InvalidInput", "ClusterUnreachable", "MaybeApplied", "ConditionNotMet",
           "Interrupted", "OutputError", "BadResponse", "ResponseTooLarge", "Redirected", "ChangeRefused", "StalePlan",
           "ProgressFailed",
           "ProtectedContext", "PartlyRead",
           "ApiError", "BadRequest", "AuthenticationFailed", "PermissionDenied", "NotFound",
           "Conflict", "ServiceUnavailable", "main", "EXIT_OK", "EXIT_FAILED", "EXIT_USAGE", "EXIT_UNREACHABLE",
           "EXIT_CONDITION", "EXIT_INTERRUPTED"]


def words_in(text):
    # The words of text, as a tuple: words_in("HEALTHY DEGRADED") is ("HEALTHY", "DEGRADED").
    return tuple(text.split())



DEFAULT_HOST = "localhost"
DEFAULT_PORT = 8080
DEFAULT_FORMAT = "table"
DEFAULT_TIMEOUT = 30.0     # seconds for one request, all included: connect, send, body, redirects, retries
DEFAULT_RETRIES = 8        # GET retries: with the pauses below they ride out about 12 s of election
DEFAULT_WAIT_TIMEOUT = 600.0
DEFAULT_POLL_INTERVAL = 1.0
DEFAULT_PLAN_TIMEOUT = 4 * 3600.0  # a rebalance or drain: stop starting moves after it (--wait-timeout)
DEFAULT_STALL_TIMEOUT = 300.0  # a move whose migration reports no progress this long is given up on
DEFAULT_WATCH_INTERVAL = 2.0
DEFAULT_MAX_RESPONSE_SIZE = 256 * 1024 ** 2  # bytes, decompressed; a million shards is about 200 MB
ERROR_BODY_LIMIT = 64 * 1024   # bytes of an error answer read for its message
FIRST_RETRY_PAUSE = 0.25   # seconds; doubled per retry up to the cap
RETRY_PAUSE_CAP = 2.0      # seconds; no pause between two tries is longer (Retry-After included)
MAX_REDIRECTS = 5          # followed for GETs only
MAX_SECONDS = 7 * 86400.0  # the longest timeout or wait accepted
LAST_POLL_GRACE = 0.5      # seconds a wait's last poll, started at the deadline, may take
RETRYABLE_STATUS = (502, 503, 504)
GATEWAY_STATUS = (502, 504)  # answered by a proxy or load balancer, possibly after it passed a request on
REDIRECT_STATUS = (301, 302, 303, 307, 308)
STRATEGIES = words_in("LIVE_COPY SNAPSHOT INCREMENTAL")
FORMAT_NAMES = words_in("json table compact ndjson csv tsv prometheus")  # FORMATS' keys, in --help's order
CLUSTER_STATUSES = words_in("HEALTHY DEGRADED UNHEALTHY")
NODE_STATUSES = words_in("HEALTHY JOINING DEGRADED UNREACHABLE LEAVING")
SHARD_STATUSES = words_in("HEALTHY MIGRATING UNDER_REPLICATED OFFLINE")
RUNNING_MIGRATION = ("PENDING", "IN_PROGRESS")
REFUSED_STATUS = ("FAILED", "REJECTED")  # a change's answer (2xx) with one of these did not happen
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
ENV_CONFIG, ENV_CONTEXT = "JADEVECTORDB_CONFIG", "JADEVECTORDB_CONTEXT"
ENV_API_PREFIX, ENV_RETRIES = "JADEVECTORDB_API_PREFIX", "JADEVECTORDB_RETRIES"
DEFAULT_DEADLINE, DEFAULT_CONCURRENCY = 120.0, 8  # a bundle's whole collection; requests (or clusters) at once
DEFAULT_API_PREFIX = "/api/v1"  # the contract's; JadeVectorDB's own server routes the same API under /v1
DIALECT_API_PREFIX = "/v1"


def tuple_class(name, fields, defaults=()):
    # Return a tuple class with named fields, defaults for the last ones and _replace: the part of
    # namedtuple this file uses, made without namedtuple's eval, which cost every run (--help too)
    # about 0.45M instructions per class, 6M for the file's 14.
    from operator import itemgetter
    names = tuple(fields.split())
    given = dict(zip(names[len(names) - len(defaults):], defaults))

    def __new__(cls, *args, **kwargs):
        if kwargs or len(args) < len(names):
            try:
                args += tuple(kwargs.pop(key) if key in kwargs else given[key] for key in names[len(args):])
            except KeyError as exc:
                raise TypeError("%s() is missing %s" % (name, exc)) from None
        if kwargs or len(args) > len(names):
            raise TypeError("%s() takes %s" % (name, ", ".join(names)))
        return tuple.__new__(cls, args)

    def _replace(self, **changes):
        replaced = tuple.__new__(type(self), [changes.pop(key, value) for key, value in zip(names, self)])
        if changes:
            raise ValueError("%s has no field %s" % (name, ", ".join(changes)))
        return replaced

    def __repr__(self):
        return "%s(%s)" % (name, ", ".join("%s=%r" % pair for pair in zip(names, self)))

    space = {"__slots__": (), "_fields": names, "__new__": __new__, "_replace": _replace, "__repr__": __repr__,
             "__getnewargs__": lambda self: tuple(self)}
    space.update((key, property(itemgetter(i), doc=key)) for i, key in enumerate(names))
    return type(name, (tuple,), space)


# ==================================================================================================
# THE LIBRARY: ClusterCLI and what it needs. Nothing here reads argv, asks a question
# or writes to stdout or stderr; the command line below uses it, and an exporter can use it alone.
# ==================================================================================================


# --------------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------------


_USERINFO = r"([A-Za-z][A-Za-z0-9+.-]*://)[^/?#\s@]*@"


def hide_credentials(text):
    # Return a URL or host as it may be shown: any user:password@ replaced by ***@.
    text = str(text)
    if "@" not in text:  # nothing to hide, and no pattern to compile for it
        return text
    text = re.sub(_USERINFO, r"\1***@", text)
    return "***@" + text.rpartition("@")[2] if "://" not in text else text


def shown(text):
    # Return an input value quoted for a message: credentials hidden, control characters escaped.
    return repr(hide_credentials(text)) if isinstance(text, str) else repr(text)


class ClusterError(Exception):
    """A failure the CLI reports in one line; carries the process exit code.

    `retryable` says whether asking again may succeed (polling goes on through
    those); `param` names the Python parameter an input error is about, so the
    command line can name its flag instead.
    """

    exit_code = EXIT_FAILED
    hint = ""
    retryable = False
    shown = None  # (data, view name): what the command line prints before the error, on stderr as a table
    answers = False  # ... or on stdout in the format asked for: the data is the command's answer

    def __init__(self, message, hint=None, param=None):
        super().__init__(message)
        self.message = message
        self.param = param
        if hint is not None:
            self.hint = hint

    def __str__(self):
        return self.message + ("; " + self.hint if self.hint else "")

    def showing(self, data, view):
        """This error, with the state the operator should see printed before it (a plan, the last status)."""
        self.shown = (data, view)
        return self


class InvalidInput(ClusterError):
    """Bad input caught before anything was sent."""

    exit_code = EXIT_USAGE


class ClusterUnreachable(ClusterError):
    """No master could be reached, or none answered in time (nothing is known to have changed)."""

    exit_code = EXIT_UNREACHABLE
    retryable = True
    tls = None  # for a TLS failure: "unknown-ca", "expired", "not-yet-valid", "hostname" or "other"


class MaybeApplied(ClusterUnreachable):
    """A change was sent, and then the connection failed or the time ran out
    before the answer was read: it may or may not have been applied."""

    retryable = False
    hint = "check the cluster before sending it again"


class PartlyRead(ClusterUnreachable):
    """Part of what a command reads could not be read: what was is its answer (a health report)."""

    retryable = False
    answers = True


class ConditionNotMet(ClusterError):
    """A --check or --wait condition did not hold."""

    exit_code = EXIT_CONDITION
    answers = True


class Interrupted(ClusterError):
    """Ctrl-C (or SIGTERM, SIGHUP), at a moment when the operator needs to know what was left
    running; exit code 128 + the signal's number (130 for Ctrl-C)."""

    exit_code = EXIT_INTERRUPTED

    def __init__(self, message, signum=2):
        super().__init__(message)
        self.exit_code = 128 + signum


class OutputError(ClusterError):
    """The result could not be written (stdout closed or full)."""


class BadResponse(ClusterError):
    """The cluster answered, but not with the JSON the contract promises."""

    retryable = True

    def __init__(self, message, status_code=None, hint=None):
        super().__init__(message, hint)
        self.status_code = status_code


class ResponseTooLarge(BadResponse):
    """The answer is larger than max_response_size (decompressed)."""

    retryable = False

    def __init__(self, message, status_code=None):
        super().__init__(message, status_code)
        self.param = "max_response_size"


class Redirected(ClusterError):
    """A change was answered with a redirect: never followed, so not applied by this request."""

    def __init__(self, message, status_code, location):
        super().__init__(message, "send it to the right URL (the url parameter)")
        self.status_code = status_code
        self.location = location


class StalePlan(ClusterError):
    """A saved plan no longer fits the cluster: some moves' shards moved, or targets changed."""

    def __init__(self, message, moves):
        super().__init__(message)
        self.moves = moves


class ProgressFailed(ClusterError):
    """apply_plan's progress callback raised: no new move was started after it (its exception is
    the __cause__; `report` says what ran)."""

    def __init__(self, message, report):
        super().__init__(message)
        self.report = report


class ProtectedContext(ClusterError):
    """A change to a protected context's cluster that was not confirmed (nothing was sent)."""


class ChangeRefused(ClusterError):
    """The cluster answered 2xx, but its body says the change did not happen."""

    def __init__(self, message, server_message=None):
        super().__init__(message)
        self.server_message = server_message


class ApiError(ClusterError):
    """The cluster said no: an HTTP error status, with the server's message."""

    def __init__(self, status_code, message, code=None, hint=None):
        detail = "HTTP %d%s" % (status_code, " " + code if code else "")
        super().__init__("%s (%s)" % (message, detail), hint)
        self.status_code = status_code
        self.server_message = message
        self.code = code
        self.retryable = status_code >= 500


class BadRequest(ApiError):
    pass


class AuthenticationFailed(ApiError):
    hint = "pass a valid key as api_key"


class PermissionDenied(ApiError):
    hint = "this API key may not do that; use a key with more rights"


class NotFound(ApiError):
    pass


class Conflict(ApiError):
    pass


class ServiceUnavailable(ApiError):
    hint = "the cluster asked to retry later (leader election or overload)"


HTTP_ERRORS = {400: BadRequest, 401: AuthenticationFailed, 403: PermissionDenied,
               404: NotFound, 409: Conflict, 503: ServiceUnavailable}


def excerpt(content, limit=120):
    # Return the start of a body, on one line, for an error message.
    text = " ".join(content[:limit * 4].decode("utf-8", "replace").split())
    return repr(text[:limit] + ("..." if len(text) > limit or len(content) > limit * 4 else ""))


# --------------------------------------------------------------------------------------------------
# Input checks: everything here runs before a request is sent
# --------------------------------------------------------------------------------------------------


def seconds(value):
    # 1.0 -> '1s', 0.25 -> '0.25s', 2.3333 -> '2.33s'.
    return "%ss" % ("%.2f" % value).rstrip("0").rstrip(".")


# Patterns are kept as text and compiled by re on first use (it caches them): compiling
# them all at import would cost every command, --help included, 3 ms.
# A host name (letters, digits, '.', '-', '_'; no control characters, '#', '?', '@',
# brackets or slashes) or a bracketed IPv6 address.
# Names are ASCII (an international name in its xn-- form), labels of 1 to 63 characters, 253 in all:
# '１２７.０.０.１' or 'a..b' is refused here, not taken for another host or failed on later.
_HOST = (r"(?:\[([0-9A-Fa-f:.]+)\]|(?=[A-Za-z0-9_.-]{1,253}(?::|$))"
         r"([A-Za-z0-9][A-Za-z0-9_-]{0,62}(?:\.[A-Za-z0-9_][A-Za-z0-9_-]{0,62})*\.?))")


# One pattern for a host with or without :PORT (group 3): compiling it costs a run 1 ms, two of them 2.
_HOST_PORT = r"^%s(?::([0-9]+))?$" % _HOST
_HEADER_SAFE = r"^[\x21-\x7e]+$"


def check_id(value, param):
    # Return an ID the operator typed: non-empty text, printable, encodable, not a path step.
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput("%s must not be empty" % param, param=param)
    if not value.isprintable():
        raise InvalidInput("%s contains control characters: %r" % (param, value), param=param)
    if value.strip(".") == "":
        # '.' and '..' survive URL quoting and are then removed by URL normalisation:
        # DELETE /nodes/.. would become DELETE on the collection above it.
        raise InvalidInput("%s %r is not an ID (only dots)" % (param, value), param=param)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput("%s %r cannot be encoded as UTF-8" % (param, value), param=param) from None
    return value


def check_port(text, param):
    if isinstance(text, bool):
        raise InvalidInput("%s: %r is not a port number (1-65535)" % (param, text), param=param)
    try:
        digits = str(text).strip()
        port = int(digits) if digits.isascii() and digits.isdigit() else int("not ASCII digits")
    except ValueError:
        raise InvalidInput("%s: %s is not a port number (1-65535)" % (param, shown(text)), param=param) from None
    if not 1 <= port <= 65535:
        raise InvalidInput("%s: port %d is out of range (1-65535)" % (param, port), param=param)
    return port


def check_address(text, param="address"):
    # Check HOST:PORT (IPv6 as [::1]:8080); returns it unchanged.
    match = re.match(_HOST_PORT, text) if isinstance(text, str) else None
    if not match or match.group(3) is None:
        raise InvalidInput("%s must be HOST:PORT (IPv6 as [::1]:8080), got %s" % (param, shown(text)), param=param)
    check_port(match.group(3), param)
    return text


def as_entries(value, param):
    # 'a,b' or ['a', 'b'] -> ['a', 'b'], each stripped and non-empty.
    if isinstance(value, str):
        entries = value.split(",")
    elif isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        entries = list(value)
    else:
        raise InvalidInput("%s must be text or a list of text, got %s" % (param, type(value).__name__), param=param)
    entries = [e.strip() for e in entries]
    if not entries or not all(entries):
        raise InvalidInput("%s must not be empty (got %s)" % (param, shown(",".join(entries))), param=param)
    return entries


def host_problem(text):
    # Return why a host name was refused, when it is not plain: for the message.
    if not text.isascii():
        return " (names are ASCII: write an international name in its xn-- form)"
    name = text.rsplit(":", 1)[0] if text.count(":") == 1 else text
    if ".." in name or name.startswith("."):
        return " (it has an empty label between dots)"
    if any(len(label) > 63 for label in name.split(".")) or len(name) > 253:
        return " (a label is longer than 63 characters, or the name longer than 253)"
    return ""


def check_hosts(hosts, port):
    # 'a,b:9090,[::1]:8080' -> base URLs, the port defaulting to `port`.
    urls = []
    for entry in as_entries(hosts, "host"):
        if "://" in entry:
            raise InvalidInput("host takes host names, not URLs such as %s" % shown(entry), "a URL goes in url", "host")
        if "@" in entry:
            raise InvalidInput("host must not carry credentials (%s); give the API key separately"
                               % shown(entry), param="host")
        if entry.count(":") > 1 and not entry.startswith("["):
            entry = "[%s]" % entry  # a bare IPv6 address
        match = re.match(_HOST_PORT, entry)
        if match and match.group(3) is not None:
            check_address(entry, "host")
            urls.append("http://" + entry)
        elif match:
            urls.append("http://%s:%d" % (entry, port))
        else:
            raise InvalidInput("host: %s is not a host or host:port%s" % (shown(entry), host_problem(entry)),
                               param="host")
    return urls


def check_urls(text):
    # 'https://a:8443,https://b:8443' -> base URLs, checked.
    from urllib.parse import urlsplit
    urls = []
    for entry in as_entries(text, "url"):
        entry = entry.rstrip("/")
        if entry.endswith("/api/v1"):  # the API's own base path: the client adds it to every request
            entry = entry[:-len("/api/v1")]
        if not entry.isprintable() or " " in entry:
            raise InvalidInput("url: %s contains spaces or control characters" % shown(entry), param="url")
        try:
            parts = urlsplit(entry)
            port = parts.port  # ValueError when not a number, or above 65535
        except ValueError as exc:
            raise InvalidInput("url: %s is not a valid URL (%s)" % (shown(entry), exc), param="url") from None
        if parts.username is not None or parts.password is not None:
            raise InvalidInput("url: %s must not carry credentials; give the API key separately"
                               % shown(entry), param="url")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InvalidInput("url: %s must look like http://host:port or https://host:port"
                               % shown(entry), param="url")
        host = parts.netloc.rsplit(":", 1)[0] if port is not None else parts.netloc
        match = re.match(_HOST_PORT, host)
        if not match or match.group(3) is not None or not parts.netloc.isascii():
            raise InvalidInput("url: %s has an invalid host name%s" % (shown(entry), host_problem(parts.netloc)),
                               param="url")
        if port is not None:
            check_port(port, "url")  # and port 0
        if parts.query or parts.fragment or "?" in entry or "#" in entry:
            raise InvalidInput("url: %s must not carry a query or a fragment" % shown(entry), param="url")
        urls.append(entry)
    return urls


def check_api_prefix(text, param="api_prefix"):
    # '/v1' or '/api/v1/' -> the path the cluster API is served under, without its last slash.
    if not isinstance(text, str) or not text.startswith("/") or "//" in text or not text.isprintable() or\
            any(c in text for c in " ?#%\\"):
        raise InvalidInput("%s must be a path such as %s or %s, got %s" % (
            param, DEFAULT_API_PREFIX, DIALECT_API_PREFIX, shown(text)), param=param)
    return text.rstrip("/")


PROXY_SCHEMES = words_in("http https socks4 socks4a socks5 socks5h")


def check_proxy(proxy):
    # Return a proxy URL from the environment, usable by requests (SOCKS needs PySocks installed).
    from urllib.parse import urlsplit
    scheme = urlsplit(proxy).scheme.lower() if "://" in proxy else ""
    if scheme not in PROXY_SCHEMES:
        raise InvalidInput("the proxy %s (from HTTP_PROXY, HTTPS_PROXY or ALL_PROXY) must be an http://, https:// "
                           "or socks5:// URL" % shown(proxy), param="proxy")
    if scheme.startswith("socks"):
        try:
            import socks  # noqa: F401  (PySocks: what requests needs for a SOCKS proxy)
        except ImportError:
            raise InvalidInput("the proxy %s is a SOCKS proxy, which needs PySocks: pip install 'requests[socks]', "
                               "or leave the cluster out of it with NO_PROXY" % shown(proxy), param="proxy") from None
    return proxy


def check_api_key(key):
    if not isinstance(key, str) or not re.match(_HEADER_SAFE, key):
        raise InvalidInput("the API key contains spaces or characters not allowed in an HTTP header",
                           param="api_key")
    return key


def check_strategy(strategy):
    if strategy not in STRATEGIES:
        raise InvalidInput("strategy must be one of %s, got %s" % (", ".join(STRATEGIES), shown(strategy)),
                           param="strategy")
    return strategy


def check_seconds(value, param):
    # Return a positive, finite number of seconds, at most a week.
    if isinstance(value, bool):
        value = None
    try:
        amount = float(value)
    except (TypeError, ValueError, OverflowError):
        raise InvalidInput("%s: %s is not a number of seconds" % (param, shown(value)), param=param) from None
    if not 0 < amount <= MAX_SECONDS:  # also false for nan
        raise InvalidInput("%s must be more than 0 and at most %d seconds, got %s"
                           % (param, MAX_SECONDS, shown(value)), param=param)
    return amount


def check_count(value, param, most=100):
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= most:
        raise InvalidInput("%s must be a whole number from 0 to %d, got %s" % (param, most, shown(value)),
                           param=param)
    return value


_SIZE_UNITS = {"": 1, "K": 1024, "M": 1024 ** 2, "G": 1024 ** 3}


def check_size(text):
    # '256M' -> bytes (K, M, G are powers of 1024; an optional B or iB after them).
    if isinstance(text, int) and not isinstance(text, bool):
        size = text
    else:
        match = re.match(r"^\s*([0-9]+)\s*([KMG]?)(?:i?B)?\s*$", str(text), re.I)
        if not match:
            raise InvalidInput("max_response_size: %s is not a size such as 256M" % shown(text),
                               param="max_response_size")
        size = int(match.group(1)) * _SIZE_UNITS[match.group(2).upper()]
    if size <= 0:
        raise InvalidInput("max_response_size must be more than 0 bytes", param="max_response_size")
    return size


def fmt_size(size):
    for unit in ("G", "M", "K"):
        if size >= _SIZE_UNITS[unit] and size % _SIZE_UNITS[unit] == 0:
            return "%d%s" % (size // _SIZE_UNITS[unit], unit)
    return "%d bytes" % size


def read_file(path, limit, timeout=DEFAULT_TIMEOUT):
    # (bytes, os.stat_result) of a file the operator named, read without ever waiting forever or
    # holding more than `limit` bytes: a regular file is read up to the limit; a pipe, FIFO or device
    # (--config <(vault read ...), /dev/zero) is read as it comes, until its end, the limit, or
    # `timeout` seconds. OSError (FileNotFoundError included) and InvalidInput say why not.
    import select
    import stat
    try:
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except ValueError:  # a NUL in the name
        raise InvalidInput("%s is not a file name" % shown(path)) from None
    try:
        info = os.fstat(descriptor)
        if stat.S_ISDIR(info.st_mode):
            raise InvalidInput("%s is a folder, not a file" % path)
        chunks, size, deadline = [], 0, time.monotonic() + timeout
        while size <= limit:
            if not stat.S_ISREG(info.st_mode):
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([descriptor], [], [], left)[0]:
                    raise InvalidInput("%s sent nothing more for %s (a FIFO or device with no writer?)"
                                       % (path, seconds(timeout)))
            try:
                chunk = os.read(descriptor, min(1024 ** 2, limit + 1 - size))
            except BlockingIOError:
                continue
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:
            raise InvalidInput("%s is larger than %s" % (path, fmt_size(limit)))
        return b"".join(chunks), info
    finally:
        os.close(descriptor)


# --------------------------------------------------------------------------------------------------
# Values from the cluster: fields, numbers, text
# --------------------------------------------------------------------------------------------------


# What each field of the contract is, by its name: how every format shows it (and, for numbers,
# what it must be). A field not named here is text.
FIELD_KINDS = dict(
    dict.fromkeys(words_in("total_nodes active_nodes total_shards replication_factor shard_count replicas "
                           "vector_count transferred_vectors total_vectors vectors_to_move shards_to_redistribute "
                           "shards_redistributed"), "count"),
    cpu_usage="percent", memory_usage="percent", disk_usage="percent", progress="percent",
    uptime_seconds="duration", size_bytes="bytes", bytes_to_move="bytes", queries_per_second="rate",
    avg_query_latency_ms="ms", p99_query_latency_ms="ms",
    under_replicated_shards="names", primary_shards="names", replica_shards="names", under_replicated_after="names",
    would_succeed="yes_no", protected="yes_no", verified="yes_no",
    status="status", severity="status", result="status")
# The contract's numbers: a server may send them as strings ("125432"); the client gives them as numbers.
NUMERIC_KINDS = words_in("count percent duration bytes rate ms")
NUMERIC_FIELDS = frozenset(key for key, kind in FIELD_KINDS.items() if kind in NUMERIC_KINDS)
# The contract's enum values, which JadeVectorDB's own server writes in lower case ("healthy", "master"):
# read in the contract's form, so filters, checks and every format see one spelling.
ENUM_KEYS = frozenset(words_in("status role strategy severity"))
ENUM_VALUES = frozenset(CLUSTER_STATUSES + NODE_STATUSES + SHARD_STATUSES + RUNNING_MIGRATION + STRATEGIES + words_in(
    "COMPLETED FAILED MASTER WORKER PASS WARN FAIL INFO WARNING ERROR CRITICAL"))
TYPED_KEYS = NUMERIC_FIELDS | ENUM_KEYS
# Fields that name something: a table never clips them (node-worker… could be any worker, and
# [fd00::3]:80… reads as port 80); other columns give way first, and if these alone do not fit, the
# table is wider than the terminal.
ID_FIELDS = frozenset(words_in("node_id shard_id migration_id database_id primary_node replica_nodes source_node "
                               "target_node address master_node name url"))
# The usage figures every node and the cluster report, as (label, field).
USAGE_FIELDS = (("CPU", "cpu_usage"), ("Memory", "memory_usage"), ("Disk", "disk_usage"))


_CAMEL = {}


def field(obj, name):
    # Return a field by its snake_case name, or the camelCase one the REST API also uses.
    if type(obj) is not dict and not isinstance(obj, dict):
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
    # Return a finite int or float from a number or a short numeric string; None otherwise.
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if value - value == 0 else None
    if isinstance(value, str) and len(value) <= 40:
        try:
            return int(value)
        except ValueError:
            try:
                n = float(value)
            except ValueError:
                return None
            return n if n - n == 0 else None
    return None


def as_float(value):
    # number() as a float; None also for integers past float range.
    n = number(value)
    try:
        return None if n is None else float(n)
    except OverflowError:
        return None


def finite(value):
    # Return a finite number from the server, or 0 (for arithmetic on untrusted values).
    n = as_float(value)
    return 0.0 if n is None else n


def clip(text):
    return text if len(text) <= MAX_CELL else text[:MAX_CELL - 3] + "..."


def compact_json(value):
    # Return nested lists and objects as one line of JSON; '...' where that cannot be done.
    import json
    try:
        return json.dumps(value, separators=(",", ":"), allow_nan=False)
    except (ValueError, TypeError, RecursionError):
        return "..."


def fmt_text(value):
    # Return any JSON value as one printable line of at most MAX_CELL characters.
    if type(value) is str and len(value) <= MAX_CELL and value.isprintable():
        return value  # the common case, first: a million cells go through here
    if value is None:
        return ""
    if isinstance(value, str):
        text = value
    elif isinstance(value, bool):
        text = "yes" if value else "no"
    elif isinstance(value, list):
        items = value[:MAX_CELL]  # a cell shows at most this many anyway
        text = ", ".join(compact_json(item) if isinstance(item, (list, dict)) else fmt_text(item) for item in items)
    elif isinstance(value, dict):
        text = compact_json(value)
    else:
        try:
            text = str(value)
        except ValueError:  # an integer longer than Python will print
            text = "..."
    if not text.isprintable():  # a server's string must not move the cursor or break a row
        text = "".join(c if c.isprintable() else " " for c in text)
    return clip(text)


def fmt_bytes(value):
    n = as_float(value)
    if n is None:
        return fmt_text(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return clip(("%d %s" % (n, unit)) if unit == "B" else "%.1f %s" % (n, unit))
        n /= 1024.0


def as_dict(data):
    return data if isinstance(data, dict) else {}


def as_list(data):
    return data if isinstance(data, list) else []


# --------------------------------------------------------------------------------------------------
# Decoding answers
# --------------------------------------------------------------------------------------------------


def _finite_float(text):
    value = float(text)
    return value if value - value == 0 else None  # 1e400 is inf: null, as NaN and Infinity


def _no_constant(name):
    return None  # NaN, Infinity, -Infinity: not JSON (RFC 8259), so null


# What decoded JSON may cost in memory, as a multiple of max_response_size. Its text says enough to
# bound it before parsing: each object, array and value is at least about this many bytes once a
# Python object, whatever its text (30 MB of "[],[]," would be 1 GB of lists, and more to draw).
DECODED_MULTIPLE = 6


OBJECT_BYTES, ARRAY_BYTES, VALUE_BYTES = 200, 64, 56


def _bounded_int(text):
    return int(text) if len(text.lstrip("-")) <= 4300 else None


def parse_json(text, limit):
    # JSON text as Python values (NaN and Infinity as None, integers too long for Python to print
    # as None), or ValueError; ResponseTooLarge before parsing when its objects, arrays and values
    # would take more than DECODED_MULTIPLE times `limit` (only a text over an eighth of the limit
    # is counted: a shorter one cannot).
    import json
    if len(text) > limit // 8:
        cost = (OBJECT_BYTES * text.count("{") + ARRAY_BYTES * text.count("[") +
                VALUE_BYTES * (text.count(",") + text.count(":")))
        if cost > DECODED_MULTIPLE * limit:
            raise ResponseTooLarge("the cluster's answer holds more values than max_response_size (%s) allows: "
                                   "about %s once decoded, more than %d times it" % (
                                       fmt_size(limit), fmt_bytes(cost), DECODED_MULTIPLE))
    try:
        return json.loads(text, parse_float=_finite_float, parse_constant=_no_constant)
    except ValueError as exc:
        if "digits" not in str(exc):
            raise
    # Python reads at most 4300 digits of an integer (a longer one costs quadratic time): such a
    # number is taken as out of range, as 1e400 is, not as text that is not JSON.
    return json.loads(text, parse_float=_finite_float, parse_constant=_no_constant, parse_int=_bounded_int)


_CAMEL_NAME = r"^[a-z][a-z0-9]*[A-Z][A-Za-z0-9]*$"


def _camel_in(value, depth):
    if depth < 0:
        return False
    if isinstance(value, dict):
        return any(isinstance(k, str) and not k.islower() and re.match(_CAMEL_NAME, k) for k in value) or\
            any(_camel_in(v, depth - 1) for v in value.values())
    if isinstance(value, list) and value:
        return any(_camel_in(value[i], depth - 1) for i in {0, len(value) // 2, len(value) - 1})
    return False


_CAMEL_HUMP = r"(?<=[a-z0-9])([A-Z])"
ID_KEYED = ("nodes", "shard_distribution")  # maps keyed by node IDs: their keys are data, not names


def _snake(value, name):
    if isinstance(value, dict):
        if name in ID_KEYED:
            return {k: _snake(v, None) for k, v in value.items()}
        out = {}
        for k, v in value.items():
            key = re.sub(_CAMEL_HUMP, lambda m: "_" + m.group(1).lower(), k) if re.match(_CAMEL_NAME, k) else k
            out[key] = _snake(v, key)
        return out
    if isinstance(value, list):
        return [_snake(v, None) for v in value]
    return value


def snake_case(data):
    # Return the contract's snake_case field names, whatever the server's naming (nodeId -> node_id;
    # unknown fields too). A server uses one naming: a few items of a list are looked at, and
    # only an answer in camelCase is walked, so a million snake_case shards cost nothing.
    if not _camel_in(data, 4):
        return data
    try:
        return _snake(data, None)
    except RecursionError:
        raise BadResponse("the cluster's answer is nested too deeply to read") from None


def _as_number(value, key, odd):
    n = number(value)
    if n is None or isinstance(value, bool):
        odd.add(key)
        return None
    return n


def typed(data, odd):
    # Return the answer with each numeric field of the contract a number: a numeric string becomes
    # its int or float; anything else there (text, true, a list) becomes None, its field's name added
    # to `odd`. Changed in place; the maps keyed by IDs (a shard count per node) are numbers too. A
    # loop, not recursion: however deep the answer, it is walked (the formats say what they cannot show).
    # An enum value in lower case ("healthy", "under-replicated") is given in the contract's form.
    numeric, special = NUMERIC_FIELDS, TYPED_KEYS
    pending = [data]
    while pending:
        node = pending.pop()
        if type(node) is list:
            pending.extend(item for item in node if type(item) is dict or type(item) is list)
            continue
        if type(node) is not dict:
            continue
        for key, value in node.items():
            kind = type(value)
            if kind is str:  # the common case first: IDs and words
                if key in special:
                    if key in numeric:
                        node[key] = _as_number(value, key, odd)
                    elif value.islower() and value.upper().replace("-", "_") in ENUM_VALUES:
                        node[key] = value.upper().replace("-", "_")
            elif kind is int or kind is float or value is None:
                continue
            elif key in ID_KEYED and kind is dict:  # keyed by node IDs, which are data, not field names
                for node_id, item in value.items():
                    if type(item) is dict or type(item) is list:
                        pending.append(item)
                    elif key == "shard_distribution" and type(item) is not int and item is not None:
                        value[node_id] = _as_number(item, key, odd)  # a shard count
            elif key in numeric:
                node[key] = _as_number(value, key, odd)
            elif kind is dict or (kind is list and value and type(value[0]) is not str):
                pending.append(value)  # a list of IDs (replica_nodes) holds no fields: a million skipped
    return data


def decode(status, reason, content, method="GET", tries=1, pause=0.0, limit=DEFAULT_MAX_RESPONSE_SIZE):
    # Return the body as JSON (non-finite numbers as None), or the matching ClusterError.
    # Given the body in a one-item list, it empties the list, so no one else holds the bytes
    # while the text is parsed (a million shards: 300 MB less at the peak).
    import json
    if isinstance(content, list):
        content = content.pop()
    if status >= 400:
        message, code = None, None
        try:
            body = json.loads(content)
            if isinstance(body, dict):
                message, code = body.get("error"), body.get("code")
        except (ValueError, RecursionError):
            pass
        if not isinstance(message, str) or not message:
            message = "%s%s" % (reason or "error", ": " + excerpt(content) if content.strip() else "")
        if method != "GET" and status in GATEWAY_STATUS:
            # A gateway answers so after passing the request on (the master died, or was slow):
            # unlike a 503, it does not mean the change was not applied.
            error = MaybeApplied("%s (HTTP %d from a gateway); the %s may or may not have been applied"
                                 % (message, status, method))
            error.status_code, error.server_message = status, message
            raise error
        error_class = HTTP_ERRORS.get(status, ApiError)
        hint = None
        if status in RETRYABLE_STATUS:
            hint = ("changes are never retried, and this one was not applied: send it again when the "
                    "cluster is ready" if method != "GET" else
                    "the cluster was still unavailable after %d tr%s in %.1fs" % (tries, "y" if tries == 1 else "ies",
                                                                                   pause))
        raise error_class(status, message, code if isinstance(code, str) else None, hint)
    after_change = ("; the %s was answered HTTP %d, so it may have been applied: check the cluster"
                    % (method, status)) if method != "GET" else ""
    if not content.strip():
        raise BadResponse("the cluster answered HTTP %d with an empty body where JSON was expected%s"
                          % (status, after_change), status)
    try:
        text = content.decode(json.detect_encoding(content), "surrogatepass")
    except UnicodeDecodeError:
        text = None
    if text is not None:
        start = content[:481]
        del content  # the text is all that is needed now
        try:
            data = parse_json(text, limit)
        except ResponseTooLarge as exc:
            exc.status_code = status
            raise
        except (ValueError, RecursionError):
            content = start
        else:
            del text
            return snake_case(data)
    raise BadResponse("the cluster answered HTTP %d with a body that is not JSON: %s%s"
                      % (status, excerpt(content), after_change), status) from None


def check_applied(answer, flag, action):
    # Return the answer, or raise ChangeRefused with the server's own reason when a 2xx says the change
    # did not happen: "removed": false, a status of FAILED or REJECTED (in any letter case), or an error.
    said_no = flag is not None and field(answer, flag) in (False, "false", "False", 0, "0", "no")
    status = field(answer, "status")
    refused = isinstance(status, str) and status.strip().upper() in REFUSED_STATUS
    error = field(answer, "error")
    if not (said_no or refused or error not in (None, "", False, [], {})):
        return answer
    reason = next((fmt_text(field(answer, name)) for name in ("error", "message", "reason")
                   if fmt_text(field(answer, name))), "the answer says %s" % (fmt_text(status) or "no"))
    raise ChangeRefused("the cluster did not %s: %s" % (action, reason), reason)


def expect_object(data):
    if not isinstance(data, dict):
        raise BadResponse("expected a JSON object from the cluster, got %s" % type(data).__name__)
    return data


def unwrap_list(data, key):
    # {"nodes": [...]} or a bare [...] -> the list.
    if isinstance(data, dict):
        data = field(data, key)
    if not isinstance(data, list):
        raise BadResponse("expected a list of %s from the cluster" % key)
    return data


# --------------------------------------------------------------------------------------------------
# Transport: connections that know what was sent, one deadline per call
# --------------------------------------------------------------------------------------------------


HEADERS = {"Accept": "application/json", "User-Agent": "jadevectordb-cluster-cli/" + __version__}


class _BearerAuth:
    # Authorization: Bearer KEY, re-applied per request and never shown in a repr.

    def __init__(self, key):
        self._key = key

    def __call__(self, request):
        request.headers["Authorization"] = "Bearer " + self._key
        return request

    def __repr__(self):
        return "<bearer ***>"


class _Exchange:
    # One request on the wire: the connection carrying it, whether connecting failed
    # (then not a byte of the request was written), and whether its deadline passed.

    __slots__ = ("conn", "connect_failed", "expired")

    def __init__(self):
        self.conn = None
        self.connect_failed = False
        self.expired = False

    def expire(self):
        # Shut the socket once the deadline passed, so a read blocked on it returns now.
        import socket
        self.expired = True
        sock = getattr(self.conn, "sock", None)
        while sock is not None and not isinstance(sock, socket.socket):  # TLS inside a tunnel to an HTTPS proxy
            sock = getattr(sock, "socket", None)
        if sock is not None:
            try:  # socket.socket's own shutdown: an SSLSocket's would drop its TLS state under the reader
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
            except (OSError, TypeError):
                pass


class _Watchdog:
    # Expires each exchange at its deadline: a body trickled a byte at a time never
    # times out a socket read, so only this bounds the whole exchange. One thread for
    # the process, started on demand and gone after IDLE seconds with nothing to watch
    # (a thread started per request would cost more than the request).

    IDLE = 10.0

    def __init__(self):
        import threading
        self._threading = threading
        self._condition = threading.Condition()
        self._deadlines = {}  # exchange -> time.monotonic() deadline
        self._running = False
        self._wakes_at = float("inf")  # when the thread's current wait ends
        self.pid = os.getpid()

    def watch(self, exchange, deadline):
        with self._condition:
            self._deadlines[exchange] = deadline
            if not self._running:
                self._running = True
                self._start()
            elif deadline < self._wakes_at:  # else the thread wakes in time anyway: no switch to it
                self._condition.notify()

    def _start(self):
        # Start the thread with the stop signals blocked in it: the kernel gives a process's signal
        # to a thread that does not block it, and only one in the main thread breaks a blocking read
        # there (Ctrl-C would otherwise wait for the read's timeout).
        import _signal as signal  # as in signals_stop_the_command
        thread = self._threading.Thread(target=self._run, name="cluster_cli-watchdog", daemon=True)
        if not hasattr(signal, "pthread_sigmask"):
            thread.start()
            return
        stops = {signal.SIGINT, signal.SIGTERM} | ({signal.SIGHUP} if hasattr(signal, "SIGHUP") else set())
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, stops)
        try:
            thread.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)

    def release(self, exchange):
        with self._condition:
            self._deadlines.pop(exchange, None)

    def _run(self):
        with self._condition:
            idle_since = time.monotonic()
            while True:
                now = time.monotonic()
                for exchange, deadline in list(self._deadlines.items()):
                    if deadline <= now:
                        del self._deadlines[exchange]
                        exchange.expire()
                if self._deadlines:
                    idle_since = now
                    self._wakes_at = min(self._deadlines.values())
                elif now - idle_since >= self.IDLE:
                    self._running = False
                    return
                else:
                    self._wakes_at = idle_since + self.IDLE
                self._condition.wait(self._wakes_at - now)


_watchdog = None


def watchdog():
    # Return the process's watchdog; a forked child gets its own (the parent's thread is not in it).
    global _watchdog
    if _watchdog is None or _watchdog.pid != os.getpid():
        _watchdog = _Watchdog()
    return _watchdog


def _tracking_adapter(local):
    # Return a requests adapter whose connections record, in local.exchange, which connection
    # carries the request and whether connecting failed. Every pool manager it makes is
    # tracked: the direct one, and those for an HTTP, HTTPS or SOCKS proxy (whose connect()
    # covers the CONNECT tunnel too), so "was the request sent" is known on every route.
    import requests.adapters

    def tracked(pool_class):
        class Connection(pool_class.ConnectionCls):
            def connect(self):
                exchange = getattr(local, "exchange", None)
                if exchange is not None:
                    exchange.conn = self
                try:
                    return super().connect()
                except BaseException:
                    if exchange is not None:
                        exchange.connect_failed = True
                    raise

            def request(self, *args, **kwargs):
                exchange = getattr(local, "exchange", None)
                if exchange is not None:
                    exchange.conn = self
                return super().request(*args, **kwargs)

        return type(pool_class.__name__, (pool_class,), {"ConnectionCls": Connection})

    def track(manager):
        manager.pool_classes_by_scheme = {scheme: tracked(pool_class)
                                          for scheme, pool_class in manager.pool_classes_by_scheme.items()}
        return manager

    class Adapter(requests.adapters.HTTPAdapter):
        def init_poolmanager(self, *args, **kwargs):
            super().init_poolmanager(*args, **kwargs)
            track(self.poolmanager)

        def proxy_manager_for(self, proxy, **proxy_kwargs):
            if proxy not in self.proxy_manager:
                track(super().proxy_manager_for(proxy, **proxy_kwargs))
            return self.proxy_manager[proxy]

    return Adapter()


def _new_session(local):
    # Return a requests session that never looks at redirects (ClusterCLI follows or refuses them
    # itself: requests would read a redirect's whole body, unbounded, and parse its Location
    # even when told not to follow it), over connections that report on the wire.
    import requests

    class Session(requests.Session):
        def get_redirect_target(self, response):
            return None

    session = Session()
    # The client decides the proxy of each URL (and the CA bundle) once, from the environment,
    # and passes it with every request: requests' own lookup per request is turned off, and with
    # it ~/.netrc, whose passwords must not go to a cluster.
    session.trust_env = False
    adapter = _tracking_adapter(local)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def read_body(response, limit, truncate=False):
    # Return the body, decompressed, read as a stream: at most `limit` bytes are ever held
    # (more is ResponseTooLarge, or with truncate the first `limit` bytes).
    length = response.headers.get("Content-Length", "")
    encoded = response.headers.get("Content-Encoding", "identity").strip().lower() not in ("", "identity")
    if not truncate and not encoded and length.isdigit() and int(length) > limit:
        raise ResponseTooLarge("the cluster's answer is %s bytes, more than max_response_size (%s)"
                               % (f"{int(length):,}", fmt_size(limit)), response.status_code)
    chunks, size = [], 0
    # Small steps for compressed bodies: each step's compressed input is inflated whole
    # by older urllib3 releases, so a gzip bomb is held only a step at a time.
    for chunk in response.iter_content(16384 if encoded else 262144):
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            if truncate:
                return b"".join(chunks)[:limit]
            raise ResponseTooLarge("the cluster's answer is larger than max_response_size (%s)" % fmt_size(limit),
                                   response.status_code)
    # One join at the end: a bytearray grown step by step leaves the allocator holding
    # memory it never returns (20 MB more for 100,000 shards).
    return b"".join(chunks)


def causes(exc):
    # Yield an exception and what it wraps (urllib3's .reason, requests' args[0], __cause__, __context__).
    seen = set()
    while isinstance(exc, BaseException) and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        inner = getattr(exc, "reason", None)
        if not isinstance(inner, BaseException):
            inner = exc.args[0] if exc.args and isinstance(exc.args[0], BaseException) else None
        exc = inner or exc.__cause__ or exc.__context__


# OpenSSL's verification results, by X509_V_ERR code: what they mean to an operator, and the fix.
# Only a CA this machine does not know is fixed by trusting the cluster's CA (verify / --ca-cert).
CERTIFICATE_PROBLEMS = {
    10: ("expired", "its certificate has expired", "renew the cluster's certificate, or check this machine's clock"),
    9: ("not-yet-valid", "its certificate is not valid yet", "check this machine's clock"),
    62: ("hostname", "its certificate is not for this name", "connect by a name the certificate carries"),
    64: ("hostname", "its certificate is not for this address", "connect by a name the certificate carries"),
}


UNKNOWN_CA = (2, 18, 19, 20, 21)  # no issuer certificate, self-signed, self-signed in the chain, unknown local issuer


def _reason(exc):
    text = str(getattr(exc.args[0], "reason", None) or exc) if exc.args else str(exc) or type(exc).__name__
    for known in ("Connection refused", "Name or service not known", "No route to host",
                  "certificate verify failed", "Temporary failure in name resolution",
                  "Connection reset by peer", "Remote end closed connection without response",
                  "Connection broken"):
        if known in text:
            return known.lower() if known[0].isupper() else known
    return text.split(": ", 1)[-1][:160]


def unreachable(exc, where):
    # Return the ClusterUnreachable for a connection that failed before the request left: a name that
    # does not resolve (not worth retrying), a certificate problem named as such, or the reason.
    import socket
    import ssl
    for cause in causes(exc):
        if isinstance(cause, ssl.SSLCertVerificationError):
            code = getattr(cause, "verify_code", None)
            if code in UNKNOWN_CA:
                kind, what = "unknown-ca", "its certificate is signed by a CA this machine does not trust"
                fix = "pass the cluster's CA bundle as verify, or verify=False to skip verification"
            else:
                kind, what, fix = CERTIFICATE_PROBLEMS.get(code, ("other", "its certificate was refused", None))
            error = ClusterUnreachable("TLS with %s failed: %s (%s)" % (
                where, what, getattr(cause, "verify_message", None) or _reason(cause)), fix)
            error.tls = kind
            error.retryable = False  # the same certificate will be refused again
            return error
        if isinstance(cause, socket.gaierror):
            error = ClusterUnreachable("cannot reach %s: the name does not resolve (%s)" % (where, _reason(cause)))
            error.retryable = False  # asking the resolver again in a moment rarely changes its answer
            return error
    error = ClusterUnreachable("%s %s failed: %s" % ("TLS with", where, _reason(exc)) if any(
        isinstance(cause, ssl.SSLError) for cause in causes(exc)) else "cannot reach %s: %s" % (where, _reason(exc)))
    error.tls = "other" if error.message.startswith("TLS") else None
    return error


# --------------------------------------------------------------------------------------------------
# Plans: rebalance, drain and dry runs, pure functions of what the cluster said
# --------------------------------------------------------------------------------------------------


def holders(shard):
    # Return the nodes named as holding a copy of the shard, primary first (as sent: for filters).
    replicas = field(shard, "replica_nodes")
    return [field(shard, "primary_node")] + (replicas if isinstance(replicas, list) else [])


def restored(shard, factor):
    # Return whether a shard has its replication factor of copies: by the server's word (HEALTHY, and
    # `replicas` at the factor: a server may copy a shard before it lists the copy), or by the copies
    # it lists, when it does not say the shard is short.
    status = field(shard, "status")
    if status == "HEALTHY" and (number(field(shard, "replicas")) or 0) >= factor:
        return True
    return status not in ("UNDER_REPLICATED", "OFFLINE") and len(set(holders(shard))) >= factor


def id_of(obj, name, what):
    # Return an ID the planners compute with: text, or a one-line BadResponse.
    value = field(obj, name)
    if not isinstance(value, str) or not value:
        raise BadResponse("the cluster sent %s whose %s is %s, not an ID" % (
            what, name, "missing" if value is None else clip(compact_json(value))))
    return value


def copies(shard):
    # Return the shard's holders, primary first, each checked to be an ID.
    what = "shard %s" % fmt_text(field(shard, "shard_id"))
    replicas = field(shard, "replica_nodes")
    if replicas is None:
        replicas = []
    if not isinstance(replicas, list):
        raise BadResponse("the cluster sent %s whose replica_nodes is not a list" % what)
    return [id_of(shard, "primary_node", what)] + [id_of({"replica_nodes": r}, "replica_nodes", what)
                                                   for r in replicas]


def nodes_by_id(nodes):
    return {id_of(node, "node_id", "a node"): node for node in nodes}


BALANCE_BY = ("shards", "vectors")
MOVABLE_SHARD = ("HEALTHY", "UNDER_REPLICATED")  # a live copy to move from; MIGRATING ones are in flight


# A plan chooses, for each shard it may move (a free shard), the node its primary ends on: where it
# is, or a HEALTHY node holding no copy of it. Whether a shard may go somewhere depends on that shard
# alone, so the order of the moves never matters (a chain C->A, B->C is two moves of two shards), and
# a plan is an assignment: a min-cost flow from the free shards to the nodes, where a node's k-th
# primary costs M*(2k+1) and a shard away from home costs 1. The flow minimises the sum of squared
# loads first, which over these load vectors (the bases of a polymatroid) is also the least maximum and
# the greatest minimum, so the least spread (Fujishige; Frank & Murota, discrete decreasing
# minimisation); then the number of moves, as M outweighs any count of moves one cycle changes.
# Solved in two steps, exact together (tests/test_planner.py checks it against exhaustive search):
#  1. The loads the copies would allow if none were in the way (water-filling over the loads no move
#     changes, the remainder to the nodes holding most now) bound both aims from below. Each excess
#     primary goes straight to the node most short of its target among those it may go to: when every
#     one finds a place (the common case: O(S log N)), both bounds are met and the plan is optimal.
#  2. Otherwise negative cycles are cancelled in the residual graph over the nodes (an arc u->v is the
#     cheapest shard on u that may go to v; a hub carries the load terms), found by Bellman-Ford: none
#     left is the flow's optimality condition. O(N^3) per cycle, run only where copies block step 1.
# By vectors, even loads are a partition problem (NP-hard): the same free shards and rules, moved by a
# local search in which each move narrows the gap between two nodes, never an empty shard.
Free = tuple_class("Free", "shard_id home holders size status")


def _water_level(base, total, current):
    # Return the least square-sum loads >= base summing to total (no copy in the way), the one
    # left over given to the nodes holding most now: a lower bound on both of the planner's aims.
    if not base:
        return []
    low, high = min(base), max(base) + total
    while low < high:  # the highest level whose filling fits in total
        middle = (low + high + 1) // 2
        if sum(max(b, middle) for b in base) <= total:
            low = middle
        else:
            high = middle - 1
    target = [max(b, low) for b in base]
    extra = total - sum(target)
    level = sorted((i for i, b in enumerate(base) if b <= low), key=lambda i: (-current[i], i))
    for i in level[:extra]:
        target[i] += 1
    return target


def _place_straight(free, where, load, target, allowed):
    # Step 1: send excess primaries to the nodes short of their target, most short first. True when
    # every node reached its target (the bound met).
    import heapq
    short = [(load[j] - target[j], j) for j in range(len(target)) if load[j] < target[j]]
    heapq.heapify(short)
    over = {j for j in range(len(target)) if load[j] > target[j]}
    givers = [s for s in range(len(free)) if where[s] < 0 or where[s] in over]  # the others keep theirs
    for s in sorted(givers, key=lambda s: (-len(free[s].holders), free[s].shard_id)):
        here = where[s]
        if here >= 0 and load[here] <= target[here] or not short:
            continue
        aside = []
        while short:
            gap, j = heapq.heappop(short)
            if gap != load[j] - target[j] or gap >= 0:
                continue  # an entry from before this node was fed
            if allowed(s, j):
                where[s] = j
                load[j] += 1
                if here >= 0:
                    load[here] -= 1
                if load[j] < target[j]:
                    heapq.heappush(short, (load[j] - target[j], j))
                break
            aside.append((gap, j))
        for entry in aside:
            heapq.heappush(short, entry)
    return all(load[j] == target[j] for j in range(len(target)))


def _negative_cycle(count, arcs):
    # Return the arcs of a negative cycle (Bellman-Ford from a virtual source), or None.
    dist, parent = [0] * count, [None] * count
    last = None
    for _ in range(count):
        last = None
        for arc in arcs:
            u, v, cost = arc[0], arc[1], arc[2]
            if dist[u] + cost < dist[v]:
                dist[v], parent[v], last = dist[u] + cost, arc, v
        if last is None:
            return None
    for _ in range(count):  # walk back into the cycle
        last = parent[last][0]
    cycle, node = [], last
    while True:
        arc = parent[node]
        cycle.append(arc)
        node = arc[0]
        if node == last:
            return cycle[::-1]


def _cancel_cycles(free, home, where, load, nodes, allowed):
    # Step 2: cancel negative cycles of the flow's residual graph until none is left (optimal).
    # Nodes 0..nodes-1 are the targets, `nodes` the drained node (if any), nodes+1 the hub.
    hub = nodes + 1
    heavy = nodes + 2  # M: outweighs any count of moves a simple cycle can change
    must_leave = heavy * (2 * (sum(load) + len(free)) + 3) + nodes + 2  # a shard left on the drained node
    while True:
        on = {}
        for s in sorted(range(len(free)), key=lambda s: free[s].shard_id):
            on.setdefault(where[s], []).append(s)
        arcs = []  # (u, v, cost, shard)
        for u, shards_on in on.items():
            for v in range(nodes):
                if v == u:
                    continue
                best = None
                for s in shards_on:
                    if not allowed(s, v):
                        continue
                    cost = (v != home[s]) - (u != home[s])
                    if best is None or cost < best[0]:
                        best = (cost, s)
                        if cost < 0:
                            break
                if best is not None:
                    arcs.append((u, v, best[0], best[1]))
            arcs.append((hub, u, -must_leave if u == nodes else -heavy * (2 * load[u] - 1), None))
        arcs += [(v, hub, heavy * (2 * load[v] + 1), None) for v in range(nodes)]
        cycle = _negative_cycle(hub + 1, arcs)
        if cycle is None:
            return
        for u, v, _, s in cycle:
            if s is not None:
                where[s] = v
            if u < nodes and v == hub:
                load[u] += 1
            elif u == hub and v < nodes:
                load[v] -= 1


def _spread_by_weight(free, where, load, allowed):
    # Move non-empty shards from the heaviest node to the lightest it can give to, each the one
    # closest to halving their gap: every move narrows a gap, so the spread never widens.
    import bisect
    import heapq
    # Each node's shards as one int each, size then position (the free list is in ID order): sorted by
    # size, ties by ID, and compared as ints (tuples cost a bisect three times as much).
    shift = max(1, len(free).bit_length())
    mask = (1 << shift) - 1
    on = [[] for _ in load]
    for s, f in enumerate(free):
        if f.size > 0 and where[s] >= 0:
            on[where[s]].append(f.size << shift | s)
    for items in on:
        items.sort()

    def best_shard(source, gap, target):
        items = on[source]
        fits = bisect.bisect_left(items, gap << shift)  # items[:fits] are smaller than the gap
        low = min(bisect.bisect_left(items, gap << (shift - 1)), fits) - 1
        high = low + 1
        for _ in range(64):  # outward from half the gap; copies rule out only a few
            if high < fits and allowed(items[high] & mask, target):
                return high
            if low >= 0 and allowed(items[low] & mask, target):
                return low
            low, high = low - 1, high + 1
            if low < 0 and high >= fits:
                return None
        return None

    def one_pass():
        # Move until every node is settled; return the number of moves made.
        heaviest = [(-w, j) for j, w in enumerate(load)]
        lightest = [(w, j) for j, w in enumerate(load)]
        heapq.heapify(heaviest)
        heapq.heapify(lightest)
        moved = 0
        while heaviest:
            if -heaviest[0][0] != load[heaviest[0][1]]:
                heapq.heappop(heaviest)
                continue
            source, tried, found = heaviest[0][1], [], None
            while lightest and found is None:
                entry = heapq.heappop(lightest)
                if entry[0] != load[entry[1]]:
                    continue
                tried.append(entry)
                target = entry[1]
                gap = load[source] - load[target]
                if gap <= 1 or not on[source] or on[source][0] >> shift >= gap:
                    break  # the next nodes are heavier: the gap only narrows, and no shard of it fits
                found = best_shard(source, gap, target)
            for entry in tried:
                heapq.heappush(lightest, entry)
            if found is None:
                heapq.heappop(heaviest)  # it can give to nobody lighter: settled, for this pass
                continue
            item = on[source].pop(found)
            bisect.insort(on[target], item)
            size, s = item >> shift, item & mask
            where[s] = target
            load[source] -= size
            load[target] += size
            moved += 1
            for j in (source, target):
                heapq.heappush(heaviest, (-load[j], j))
                heapq.heappush(lightest, (load[j], j))
        return moved

    for _ in range(len(load) + 1):  # a node settled early may give again once others moved
        if not one_pass():
            return


def _cluster_loads(nodes, shards, in_flight=None):
    # (nodes by id, HEALTHY node ids, primary counts, vectors per node, shards as Free records, sorted
    # by id): the planners' view of a cluster. The one accounting of where a primary is, for plans,
    # their staleness and their verification alike: a shard in flight (in_flight: {shard_id: target})
    # counts on the node it is going to.
    by_id = nodes_by_id(nodes)
    going = (in_flight or {}).get
    healthy = sorted(n for n, node in by_id.items() if field(node, "status") == "HEALTHY")
    counts = {n: 0 for n in sorted(by_id)}
    vectors = {n: 0 for n in sorted(by_id)}
    listed = []
    for shard in shards:
        # The common case first: the client's answers are snake_case, IDs text, counts numbers.
        shard_id, held = shard.get("shard_id") if type(shard) is dict else None, None
        if type(shard_id) is str and shard_id:
            primary, replicas = shard.get("primary_node"), shard.get("replica_nodes")
            if type(primary) is str and primary and type(replicas) is list:
                for replica in replicas:
                    if type(replica) is not str or not replica:
                        break
                else:
                    held = [primary] + replicas
        if held is None:
            shard_id, held = id_of(shard, "shard_id", "a shard"), copies(shard)
        size = shard.get("vector_count")
        if type(size) is not int:
            size = int(finite(field(shard, "vector_count")))
        status = shard.get("status")
        if type(status) is not str:
            status = fmt_text(field(shard, "status")) or "unknown"
        at = (going(shard_id) if in_flight else None) or held[0]
        counts[at] = counts.get(at, 0) + 1
        vectors[at] = vectors.get(at, 0) + size
        listed.append(Free(shard_id, held[0], held, size, status))
    listed.sort()  # by shard ID: IDs are unique, so nothing after them is compared
    return by_id, healthy, counts, vectors, listed


def _solve(targets, fixed, free, balance_by):
    # Return (where each free shard ends, as a node or None, and the loads step 1 aimed at): the
    # assignment above, over the HEALTHY `targets`, `fixed` the load no move changes.
    index = {n: i for i, n in enumerate(targets)}
    home = [index.get(f.home, -1) for f in free]

    def allowed(s, j):
        return j == home[s] or targets[j] not in free[s].holders

    where = list(home)
    weight = [1 if balance_by == "shards" else f.size for f in free]
    load = [fixed.get(n, 0) for n in targets]
    for s, j in enumerate(where):
        if j >= 0:
            load[j] += weight[s]
    if balance_by == "vectors":
        _spread_by_weight(free, where, load, allowed)
        return [targets[j] if j >= 0 else None for j in where], None
    base = [fixed.get(n, 0) for n in targets]
    target = _water_level(base, sum(base) + len(free), load)
    if not _place_straight(free, where, load, target, allowed) or any(j < 0 for j in where):
        drained_at = len(targets)
        where = [drained_at if j < 0 else j for j in where]
        _cancel_cycles(free, [drained_at if j < 0 else j for j in home], where, load, len(targets), allowed)
        where = [-1 if j == drained_at else j for j in where]
    return [targets[j] if j >= 0 else None for j in where], dict(zip(targets, target))


def after_moves(before, moves):
    # Return the primaries per node once the moves are made: a plan's `after`, always derived from its
    # `before` and its moves (a plan trimmed by hand is judged by the moves it kept).
    after = dict(before)
    for move in moves:
        after[move["source_node"]] = after.get(move["source_node"], 0) - 1
        after[move["target_node"]] = after.get(move["target_node"], 0) + 1
    return after


# Why a plan leaves a node out (only HEALTHY nodes take primaries), by its status.
LEFT_OUT = {"JOINING": "takes primaries once HEALTHY: wait for it (add-node --wait, or nodes --status JOINING) and "
                       "plan again",
            "LEAVING": "leaving the cluster: no primary goes to it",
            "UNREACHABLE": "no primary goes to it, and its own cannot move",
            "DEGRADED": "no primary goes to it until it is HEALTHY again"}


def left_out(by_id, healthy, counts, drained=None):
    # Return the nodes a plan leaves out, each with its status, its primaries and why.
    return [{"node_id": n, "status": fmt_text(field(node, "status")) or "unknown", "primaries": counts.get(n, 0),
             "reason": LEFT_OUT.get(field(node, "status"), "only HEALTHY nodes take primaries")}
            for n, node in sorted(by_id.items()) if n not in healthy and n != drained]


def plan_of(kind, moves, before, skipped, **what):
    # Return a plan as rebalance and drain-node print it and --plan reads it back.
    return dict(kind=kind, **what, moves=moves, before=before, after=after_moves(before, moves), skipped=skipped)


def in_the_way(targets, free, ends, aimed, after):
    # Return the copies in the way of an even spread, only when they cost balance (the plan's spread is
    # worse than the one no copy would prevent): each node above its aim, with the nodes at least two
    # below it. As the plan is optimal, each of its movable primaries has a copy on each of those (else
    # moving one there would even the spread): named as they are.
    if sum(after.get(n, 0) ** 2 for n in targets) <= sum(aimed.get(n, 0) ** 2 for n in targets):
        return []  # as even as with no copy anywhere: nothing is blocked
    found = []
    for node in targets:
        if after.get(node, 0) <= aimed.get(node, 0):
            continue
        mine = [f for f, end in zip(free, ends) if end == node]
        lower = [n for n in targets if after.get(n, 0) <= after.get(node, 0) - 2]
        if not lower:
            continue
        found.append({"node_id": node, "primaries": after.get(node, 0), "could_hold": aimed.get(node, 0),
                      "reason": "each of its %d movable primaries has a copy on %s, %s with two or more primaries "
                                "fewer" % (len(mine), ", ".join(lower), "the node" if len(lower) == 1 else "every node")
                      if mine else "its primaries cannot move (none is HEALTHY or UNDER_REPLICATED on it)"})
    return found


def moved_vectors(vectors, moves):
    after = dict(vectors)
    for move in moves:
        after[move["source_node"]] -= move["vector_count"]
        after[move["target_node"]] = after.get(move["target_node"], 0) + move["vector_count"]
    return after


def rebalance_plan(nodes, shards, balance_by="shards", in_flight=None):
    # Return which primaries to move where so the HEALTHY nodes' primary counts (or vectors) are as
    # even as the copies allow, in the fewest moves. Moves HEALTHY or UNDER_REPLICATED shards' primaries
    # between HEALTHY nodes, never onto a node holding a copy, each shard at most once; a MIGRATING
    # shard counts on the node it is going to (in_flight: {shard_id: target node}) and is never moved;
    # by vectors, an empty shard never moves. The same cluster gives the same plan.
    if balance_by not in BALANCE_BY:
        raise InvalidInput("balance_by must be one of %s, got %s" % (", ".join(BALANCE_BY), shown(balance_by)),
                           param="balance_by")
    by_id, healthy, counts, vectors, listed = _cluster_loads(nodes, shards, in_flight)
    in_flight = in_flight or {}
    fixed, free, skipped, flying = {}, [], [], []
    live = set(healthy)
    for shard in listed:
        shard_id, _, held, size, status = shard
        weight = 1 if balance_by == "shards" else size
        if status == "MIGRATING" or shard_id in in_flight:
            going = in_flight.get(shard_id)
            fixed[going or held[0]] = fixed.get(going or held[0], 0) + weight
            flying.append({"shard_id": shard_id, "source_node": held[0], "target_node": going})
        elif held[0] not in live:
            fixed[held[0]] = fixed.get(held[0], 0) + weight
            skipped.append({"shard_id": shard_id, "reason": "its primary is on %s, which is %s: no live copy to "
                            "move from; left to the cluster" % (held[0], fmt_text(field(by_id.get(held[0]), "status"))
                                                                  or "not in the cluster")})
        elif status not in MOVABLE_SHARD:
            fixed[held[0]] = fixed.get(held[0], 0) + weight
            skipped.append({"shard_id": shard_id, "reason": "the shard is %s" % status})
        elif balance_by == "vectors" and size <= 0:
            skipped.append({"shard_id": shard_id, "reason": "it is empty: moving it changes no node's vectors"})
        else:
            free.append(shard)
    ends, aimed = _solve(healthy, fixed, free, balance_by)
    moves = [{"shard_id": f.shard_id, "source_node": f.home, "target_node": end, "vector_count": f.size}
             for f, end in zip(free, ends) if end != f.home]
    plan = plan_of("rebalance", moves, counts, skipped, balance_by=balance_by)
    plan["in_flight"], plan["left_out"] = flying, left_out(by_id, healthy, counts)
    plan["blocked"] = in_the_way(healthy, free, ends, aimed, plan["after"]) if aimed else []
    if balance_by == "vectors":
        plan["vectors_before"] = vectors
        plan["vectors_after"] = moved_vectors(vectors, moves)
    return plan


def drain_plan(nodes, shards, node_id, in_flight=None):
    # Return moves for every primary on node_id onto the other HEALTHY nodes holding no copy of it,
    # leaving them as even as the copies allow. A shard MIGRATING to or from the node is waited out
    # (listed in in_flight); a node that is UNREACHABLE has no live copy to move from (its primaries are
    # skipped, and the cluster promotes a replica of each when it is removed). A primary with no legal
    # target stays, listed in `stuck` (and among the skipped) with why; the others move.
    by_id, healthy, counts, vectors, listed = _cluster_loads(nodes, shards, in_flight)
    if node_id not in by_id:
        raise ClusterError("node %s is not in the cluster" % node_id)
    in_flight = in_flight or {}
    node_status = fmt_text(field(by_id[node_id], "status")) or "unknown"
    targets = [n for n in healthy if n != node_id]
    fixed, free, stuck, skipped, flying, replicas = {}, [], [], [], [], []
    for shard in listed:
        shard_id, _, held, size, status = shard
        if node_id in held[1:]:
            replicas.append(shard_id)
        going = in_flight.get(shard_id)
        if status == "MIGRATING" or going:
            fixed[going or held[0]] = fixed.get(going or held[0], 0) + 1
            if node_id in (held[0], going):
                flying.append({"shard_id": shard_id, "source_node": held[0], "target_node": going})
        elif held[0] != node_id:
            fixed[held[0]] = fixed.get(held[0], 0) + 1
        elif node_status in DOWN_NODE_STATUSES:
            skipped.append({"shard_id": shard_id, "reason": "%s is %s: no live copy to move from; when it is "
                            "removed the cluster promotes a replica" % (node_id, node_status)})
        elif status not in MOVABLE_SHARD:
            stuck.append({"shard_id": shard_id, "reason": "the shard is %s" % status})
        elif not [n for n in targets if n not in held]:
            stuck.append({"shard_id": shard_id, "reason": "every other HEALTHY node already holds a copy"
                          if targets else "no other node is HEALTHY"})
        else:
            free.append(shard)
    ends, _ = _solve(targets, fixed, free, "shards")
    moves = [{"shard_id": f.shard_id, "source_node": node_id, "target_node": end, "vector_count": f.size}
             for f, end in zip(free, ends)]
    plan = plan_of("drain", moves, counts, stuck + skipped, node_id=node_id)
    plan.update(in_flight=flying, replica_shards=replicas, left_out=left_out(by_id, healthy, counts, node_id),
                stuck=stuck)
    return plan

def explain_shard(nodes, shards, shard_id, in_flight=None):
    # Return where the shard's primary could move and why not elsewhere (as Elasticsearch's allocation
    # explain does): for each node, whether a rebalance may put it there and why, and where the
    # rebalance planned now would put it.
    by_id, healthy, counts, _, listed = _cluster_loads(nodes, shards, in_flight)
    found = [item for item in listed if item[0] == shard_id]
    if not found:
        raise NotFound("shard %s is not in the cluster" % shard_id)
    _, _, held, _, status = found[0]
    going = (in_flight or {}).get(shard_id)
    if status == "MIGRATING" or going:
        why = "it is MIGRATING%s: a rebalance counts it there and never moves it again" % (
            " to %s" % going if going else "")
    elif held[0] not in healthy:
        why = "its primary is on %s, which is %s: no live copy to move from" % (
            held[0], fmt_text(field(by_id.get(held[0]), "status")) or "not in the cluster")
    elif status not in MOVABLE_SHARD:
        why = "the shard is %s" % status
    else:
        why = ""
    rows = []
    for node_id in sorted(by_id):
        node_status = fmt_text(field(by_id[node_id], "status")) or "unknown"
        if node_id == held[0]:
            reason = "holds its primary"
        elif node_id in held:
            reason = "holds a replica of it: a node keeps one copy of a shard"
        elif node_status != "HEALTHY":
            reason = "is %s: only HEALTHY nodes take primaries" % node_status
        elif why:
            reason = why
        else:
            reason = ""
        rows.append({"node_id": node_id, "status": node_status, "primaries": counts.get(node_id, 0),
                     "can_take": not reason, "reason": reason or "may take it"})
    if not why and not any(row["can_take"] for row in rows):
        why = "no node may take it: every other node holds a copy of it or is not HEALTHY"
    plan = rebalance_plan(nodes, shards, "shards", in_flight)
    move = [m for m in plan["moves"] if m["shard_id"] == shard_id]
    planned = ("%s -> %s" % (move[0]["source_node"], move[0]["target_node"]) if move else
               "none: it stays on %s" % held[0] + ("" if why else " (copies are in the way of an even spread: see "
                                                    "the dry run's Blocked part)" if plan["blocked"] else
                                                    " (balance needs no move of it)"))
    return {"shard_id": shard_id, "status": status, "primary_node": held[0], "replica_nodes": held[1:],
            "movable": not why, "reason": why or "it may move to any node marked yes", "planned": planned,
            "nodes": rows}


def check_plan(plan):
    # Return a plan read back (from --plan FILE): the shape rebalance and drain-node write, or InvalidInput.
    def bad(why):
        return InvalidInput("plan: %s" % why, param="plan")
    if not isinstance(plan, dict) or not isinstance(plan.get("moves"), list):
        raise bad("not a plan (an object with a list of moves, as 'rebalance --dry-run --format json' writes)")
    for move in plan["moves"]:
        if not isinstance(move, dict) or not all(isinstance(move.get(k), str) and move.get(k) for k in
                                                 ("shard_id", "source_node", "target_node")):
            raise bad("every move needs shard_id, source_node and target_node, got %s" % clip(compact_json(move)))
        check_id(move["shard_id"], "shard_id")
    if len({move["shard_id"] for move in plan["moves"]}) != len(plan["moves"]):
        raise bad("a shard moves more than once")
    before = plan.get("before")
    if before is not None:
        if not isinstance(before, dict) or not all(isinstance(n, str) and type(c) is int for n, c in before.items()):
            raise bad("'before' must map node IDs to counts")
        plan["after"] = after_moves(before, plan["moves"])  # what the moves it holds make of `before`
    elif not isinstance(plan.get("after", {}), dict):
        raise bad("'after' must map node IDs to counts")
    return plan


def _check(name, passed, detail, blocking=True):
    # Return a dry-run check; a failed `blocking` one is a refusal the contract makes, any other a warning.
    return {"name": name, "passed": bool(passed), "blocking": blocking, "detail": detail}


def dry_run_plan(checks, **what):
    return dict(dry_run=True, **what, checks=checks,
                would_succeed=all(c["passed"] for c in checks if c["blocking"]))


def plan_migration(client, shard_id, target, source=None, strategy="LIVE_COPY"):
    # Return what migrate-shard would do and whether the cluster would accept it (reads only).
    shard = client.shard_status(shard_id)
    nodes = nodes_by_id(client.list_nodes())
    held_by = copies(shard)
    primary = held_by[0]
    source = source or primary
    target_status = fmt_text(field(nodes.get(target), "status")) or "unknown"
    migration = field(shard, "migration")
    running = field(migration, "status") in RUNNING_MIGRATION
    checks = [  # the contract's 404 and 409 answers, then what is only worth a warning
        _check("source holds the primary", source == primary, "%s's primary is on %s" % (shard_id, primary)),
        _check("source exists", source in nodes,
               "%s is in the cluster" % source if source in nodes else "%s is not in the cluster" % source),
        _check("target exists", target in nodes,
               "%s is in the cluster" % target if target in nodes else "%s is not in the cluster" % target),
        _check("target holds no copy", target not in held_by,
               ("%s already holds a copy of %s" if target in held_by else "%s holds no copy of %s")
               % (target, shard_id)),
        _check("no migration running", not running,
               "migration %s is %s" % (fmt_text(field(migration, "migration_id")),
                                       fmt_text(field(migration, "status")))
               if running else "no migration of %s is running" % shard_id),
        _check("target is healthy", target not in nodes or target_status == "HEALTHY",
               "%s is %s" % (target, target_status), blocking=False),
    ]
    return dry_run_plan(checks, action="migrate-shard", shard_id=shard_id, source_node=source, target_node=target,
                        strategy=strategy, vectors_to_move=field(shard, "vector_count"),
                        bytes_to_move=field(shard, "size_bytes"))


def plan_node_removal(client, node_id):
    # Return what remove-node would do to the shards and whether the cluster would accept it (reads only).
    status = client.cluster_status()
    nodes = nodes_by_id(client.list_nodes())
    node = nodes.get(node_id)
    live = {n for n, v in nodes.items() if field(v, "status") not in DOWN_NODE_STATUSES and n != node_id}
    movable_to = {n for n in live if field(nodes[n], "status") in ("HEALTHY", "DEGRADED")}
    factor = number(field(status, "replication_factor")) or 1
    shards = [(id_of(s, "shard_id", "a shard"), copies(s)) for s in client.list_shards(node_id=node_id)]
    shards = [(shard_id, held_by) for shard_id, held_by in shards if node_id in held_by]
    stranded, under_after = [], []
    for shard_id, held_by in shards:
        others = [n for n in held_by if n in live]
        if not others:
            stranded.append(shard_id)
        if len(others) + bool(movable_to - set(held_by)) < factor:
            under_after.append(shard_id)
    is_master = field(node, "role") == "MASTER" or node_id == field(status, "master_node")
    primaries = [shard_id for shard_id, held_by in shards if held_by[0] == node_id]
    checks = [
        _check("node exists", node is not None,
               "%s is in the cluster" % node_id if node else "%s is not in the cluster" % node_id),
        _check("not the master", not is_master, "%s is %sthe master" % (node_id, "" if is_master else "not ")),
        _check("not the last node", len(nodes) > 1, "%d nodes in the cluster" % len(nodes)),
        _check("every shard keeps a live copy", not stranded,
               "no other live copy of: " + ", ".join(stranded) if stranded else
               "each of its %d shards has a live copy elsewhere" % len(shards)),
    ]
    return dry_run_plan(checks, action="remove-node", node_id=node_id, primary_shards=primaries,
                        replica_shards=[shard_id for shard_id, held_by in shards if held_by[0] != node_id],
                        shards_to_redistribute=len(shards), under_replicated_after=under_after)


# --------------------------------------------------------------------------------------------------
# Waiting
# --------------------------------------------------------------------------------------------------


class Clock:
    # Time as waits, a plan's executor and its stall checks read it: now(), monotonic seconds, and
    # sleep(seconds). The process has the real one; a test puts in one it moves on itself, so that a
    # wait of minutes takes none of the test's time (tests/conftest.py).

    now = staticmethod(time.monotonic)
    sleep = staticmethod(time.sleep)


CLOCK = Clock()


def rounds(interval, deadline=None):
    # Yield at once, then every `interval` seconds until the deadline, the last time at it: the one
    # rhythm of every wait, of a plan's polls and of --watch.
    while True:
        yield
        now = CLOCK.now()
        if deadline is not None and now >= deadline:
            return
        CLOCK.sleep(interval if deadline is None else min(interval, deadline - now))


def poll_until(client, read, done, timeout, interval):
    # Call read() until done(value), polling through failures that may pass, until
    # the deadline (with a last poll at it). Return (value, done, seconds waited,
    # the last failure); value is None when no poll succeeded.
    started = CLOCK.now()
    deadline = started + timeout
    value, last_error = None, None
    for _ in rounds(interval, deadline):
        # The wait's end bounds every poll, retries included; the last one, started at
        # the deadline, gets a moment to answer.
        with client._transport.bounded(max(deadline, CLOCK.now() + LAST_POLL_GRACE)):
            try:
                value, last_error = read(), None
            except ClusterError as exc:
                if not exc.retryable:
                    raise
                last_error = exc
        if last_error is None and done(value):
            return value, True, CLOCK.now() - started, None
    return value, False, CLOCK.now() - started, last_error


# --------------------------------------------------------------------------------------------------
# Contexts and settings: the contexts file, and which setting wins
# --------------------------------------------------------------------------------------------------


# -- named clusters: contexts in a TOML file ----------------------------------------------

_CONTEXT_NAME = r"^[A-Za-z0-9][\w.-]*$"
MAX_CONFIG_SIZE = 1024 ** 2  # bytes; a contexts file is a few hundred
_ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"


# The contexts file, read: where it is, its default_context and contexts ({name: settings}).
Config = tuple_class("Config", "path default_context contexts")


# The context a run uses: its name, what chose it (--context, the environment, default_context),
# its settings, and the file they are from.
Context = tuple_class("Context", "name chosen_by settings path")


# A source of settings: its name in messages, what it sets ({setting: value, or a function that
# checks and gives the value, called only when it is the one used}), and labels that name some of
# its settings better than its name does (JADEVECTORDB_PORT rather than "the environment").
Source = tuple_class("Source", "name values labels")


# -- settings: one record each ---------------------------------------------------------------

# One option of a command, as argparse is given it: its flags, add_argument's settings, and the
# library parameter it sets (so an error about that parameter names the flag instead).
Option = tuple_class("Option", "flags settings param")


def option(*flags, param=None, **settings):
    return Option(flags, settings, param)


def switch(*flags_and_help):
    # An option that is given or not (store_true): switch("-y", "--yes", "its help").
    return option(*flags_and_help[:-1], action="store_true", help=flags_and_help[-1])


def _argument_type(check):
    # Return an argparse type made of one of the client's checks, its message without the parameter name.
    def convert(text):
        try:
            return check(text)
        except InvalidInput as exc:
            message = exc.message
            if exc.param and message.startswith(exc.param):
                message = message[len(exc.param):].lstrip(": ")
            raise argparse.ArgumentTypeError(message) from None
    convert.__name__ = check.__name__
    return convert


def check_format(text, where):
    if text not in FORMAT_NAMES:
        raise InvalidInput("%s must be one of %s, got %s" % (where, ", ".join(FORMAT_NAMES), shown(text)))
    return text


def check_key(text, where):
    # Check an API key, refusing an empty one: it would send no key, silently.
    if isinstance(text, str) and not text.strip():
        raise InvalidInput(where + (" is set but empty (unset it to send no key)" if where.isupper() else
                                    " must not be empty (leave it out to send no key)" if where[0] == "-" else
                                    " must not be empty"))
    return check_api_key(text)


def check_retries(text, where):
    # Return a number of retries, 0 to 100, from text or a number.
    try:
        count = None if isinstance(text, (bool, float)) else int(text)
    except ValueError:
        count = None
    if count is None:
        raise InvalidInput("%s: %s is not a whole number" % (where, shown(text)), param=where)
    if not 0 <= count <= 100:
        raise InvalidInput("%s: %s must be from 0 to 100" % (where, shown(text)), param=where)
    return count


def check_env_name(text, where):
    if not re.match(_ENV_NAME, text):
        raise InvalidInput("%s must be the name of an environment variable, got %s" % (where, shown(text)))
    return text


# One setting, written once: its name (ClusterCLI's keyword argument when `client`), its flag (an
# Option; None for a key only a context has), its environment variable, the kind of value a context
# may give it (None: no context key), its default and the default's text in help and the README, and
# its check: check(value, where) -> the value, for a flag's text, the environment's and a context's.
Setting = tuple_class("Setting", "name option env kind default shown check client")


# What a context's value of each kind must be: (its types, said in words).
KINDS = {"text": ((str,), "text"), "texts": ((str, list), "text or a list of text"),
         "whole": ((int,), "a whole number"), "seconds": ((int, float), "a number of seconds"),
         "bool": ((bool,), "true or false")}


def setting(name, flags=(), help="", env=None, kind=None,
            default=None, default_text=None, check=None,
            client=False, parsed=False, **argparse_settings):
    # Return a Setting; its flag's help ends with its variable and default, its argparse type
    # (parsed) is its check, and it defaults to None: a flag not given never poses as given.
    if default_text is None and default not in (None, False):
        default_text = "%g" % default if isinstance(default, float) else str(default)
    said = "; ".join((["env " + env] if env else []) + (["default " + default_text] if default_text else []))
    check = check or (lambda value, where: value)
    if parsed:
        argparse_settings["type"] = _argument_type(lambda text: check(text, name))
    flag = option(*flags, param=name, default=None, help=help + (" (%s)" % said if said else ""),
                  **argparse_settings) if flags else None
    return Setting(name, flag, env, kind, default, default_text, check, client)


# Every setting, in --help's order. Which source wins is written once, in setting_sources().
SETTINGS = (
    setting("host", ("--host",), "master node(s), host or host:port, comma-separated, tried in order",
            ENV_HOST, "texts", DEFAULT_HOST, check=lambda text, where: check_hosts(text, DEFAULT_PORT) and text,
            client=True, metavar="HOST[,HOST...]"),
    setting("port", ("--port",), "API port for hosts given without one", ENV_PORT, "whole", DEFAULT_PORT,
            check=check_port, client=True, parsed=True),
    setting("url", ("--url",), "full base URL(s) such as https://jade.example:8443; overrides --host/--port",
            ENV_URL, "texts", check=lambda text, where: check_urls(text) and text, client=True,
            metavar="URL[,URL...]"),
    setting("api_prefix", ("--api-prefix",), "the path the cluster API is served under; reads move to %s, "
            "JadeVectorDB's own server's, when only that answers" % DIALECT_API_PREFIX, ENV_API_PREFIX, "text",
            default_text=DEFAULT_API_PREFIX, check=check_api_prefix, client=True, metavar="PATH"),
    setting("format", ("-o", "--format"), "output format", ENV_FORMAT, "text", DEFAULT_FORMAT, check=check_format,
            choices=FORMAT_NAMES),
    setting("api_key", ("--api-key",), "API key, sent as 'Authorization: Bearer KEY'", ENV_API_KEY, "text",
            check=check_key, client=True, metavar="KEY"),
    setting("api_key_env", kind="text", check=check_env_name),
    setting("timeout", ("--timeout",), "the most one request may take, all included: connect, send, the whole "
            "answer, redirects and GET retries", kind="seconds", default=DEFAULT_TIMEOUT, check=check_seconds,
            client=True, parsed=True, metavar="SECONDS"),
    setting("retries", ("--retries",), "retries of a GET after a connection failure or 502/503/504, pausing %g s "
            "doubling to %g s, inside --timeout; POST and DELETE are never retried"
            % (FIRST_RETRY_PAUSE, RETRY_PAUSE_CAP), ENV_RETRIES, "whole", DEFAULT_RETRIES, check=check_retries,
            client=True, parsed=True, metavar="N"),
    setting("max_response_size", ("--max-response-size",), "refuse an answer larger than SIZE once decompressed, "
            "such as 64M or 1G", default=DEFAULT_MAX_RESPONSE_SIZE, default_text=fmt_size(DEFAULT_MAX_RESPONSE_SIZE),
            check=lambda text, where: check_size(text), client=True, parsed=True, metavar="SIZE"),
    setting("context", ("--context",), "the named cluster to use, from the contexts file; see the 'contexts' "
            "command", ENV_CONTEXT, default_text="the file's default_context", metavar="NAME"),
    setting("config", ("--config",), "the contexts file", ENV_CONFIG,
            default_text="$XDG_CONFIG_HOME/jadevectordb/cluster.toml", metavar="FILE"),
    setting("ca_cert", ("--ca-cert",), "CA bundle to verify the cluster's TLS certificate with", kind="text",
            metavar="PATH"),
    setting("insecure", ("--insecure",), "do not verify TLS certificates (prints a warning)", default=False,
            action="store_true"),
    setting("protected", kind="bool"),
)
SETTING = {given.name: given for given in SETTINGS}
CHOOSING = ("context", "config")  # read first, to find the others: never a value of resolve()
# What a [contexts.NAME] table may set. A mistyped setting is an error, not ignored:
# "protect = true" must not leave production unprotected.
CONTEXT_SETTINGS = tuple(given.name for given in SETTINGS if given.kind)
# What ClusterCLI() takes: what from_context() lets a caller override.
CLIENT_SETTINGS = tuple(given.name for given in SETTINGS if given.client) + ("verify",)


DEFAULT_SOURCE = Source("the defaults", {given.name: given.default for given in SETTINGS
                                         if given.default is not None and given.name not in CHOOSING}, {})


def check_context_setting(key, value):
    # Check one setting of a context as the flag that sets it would be.
    types, said = KINDS[SETTING[key].kind]
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
        raise InvalidInput("%s must be %s" % (key, said))
    SETTING[key].check(value, key)

ADDRESS = words_in("url host port")  # one setting: the cluster's address
ADDRESS_DEFAULTS = {"host": DEFAULT_HOST, "port": DEFAULT_PORT}


class Resolved(dict):
    # Settings by name; `sources` says where each came from ("address" for url/host/port), and
    # `overridden` lists the addresses lower sources gave that were not used: (where, base URLs).

    sources = overridden = None


def base_urls(address):
    # Return the base URLs an address ({"url": ...} or {"host": ..., "port": ...}) makes, checked.
    if "url" in address:
        return check_urls(address["url"])
    return check_hosts(address["host"], check_port(address["port"], "port"))


def resolve(sources):
    # Return the settings, each from the first of `sources` (highest first) that sets it. The address is
    # one setting: it comes whole from the first source that sets any part of it (url, or host and
    # port), so a cluster is never addressed by one source's host and another's port.
    resolved = Resolved()
    resolved.sources, resolved.overridden = {}, []

    def value_of(source, name):
        value = source.values[name]
        return value() if callable(value) else value

    for source in reversed(sources):  # the highest last: it wins
        for name in source.values:
            if name not in ADDRESS:
                resolved[name], resolved.sources[name] = source, source.labels.get(name, source.name)
    for name, source in list(resolved.items()):
        resolved[name] = value_of(source, name)
    addressed = [source for source in sources if any(name in source.values for name in ADDRESS)]

    def address_of(source):
        if "url" in source.values:
            return {"url": value_of(source, "url")}, source.labels.get("url", source.name)
        parts = {name: value_of(source, name) if name in source.values else ADDRESS_DEFAULTS[name]
                 for name in ("host", "port")}
        labels = [source.labels.get(name, source.name) for name in ("host", "port") if name in source.values]
        return parts, " and ".join(dict.fromkeys(label for label in labels if label != "the default"))

    address, resolved.sources["address"] = address_of(addressed[0])
    resolved.update(address)
    if addressed[0] is not DEFAULT_SOURCE:
        used = base_urls(address)
        for source in addressed[1:]:
            if source is DEFAULT_SOURCE:
                continue
            try:
                other, label = address_of(source)
                urls = base_urls(other)
                if "url" in other or "url" in address:
                    differs = urls != used
                else:  # only the parts it set: JADEVECTORDB_PORT alone names no host
                    differs = any(other[name] != address[name] for name in ("host", "port") if name in source.values)
            except InvalidInput:
                continue  # a value that would have been refused, had it been used
            if differs:
                resolved.overridden.append((label, urls))
    return resolved


def config_path(flag):
    # (the contexts file, what named it: '--config', JADEVECTORDB_CONFIG, or None for the default place).
    if flag:
        return flag, "--config"
    if os.environ.get(ENV_CONFIG):
        return os.environ[ENV_CONFIG], ENV_CONFIG
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(base, "jadevectordb", "cluster.toml"), None


def check_file_is_ours(path, info):
    # Refuse a contexts file others could have written (the file, or its folder, writable by group or
    # others, or owned by another user): like ssh with its keys, since it decides where changes go and
    # which clusters are protected. A sticky folder such as /tmp is fine: no one else may
    # rename or replace what is ours in it.
    if os.name != "posix":
        return
    folder = os.path.dirname(os.path.realpath(path)) or "."
    for what, where, stats in (("file", path, info), ("folder", folder, None)):
        try:
            stats = stats or os.stat(where)
        except OSError:
            continue
        if stats.st_uid not in (0, os.geteuid()):
            raise InvalidInput("%s: its %s %s belongs to another user (uid %d), who could point it at another "
                               "cluster; use a contexts file of your own" % (path, what, where, stats.st_uid))
        if stats.st_mode & 0o022 and not (what == "folder" and stats.st_mode & 0o1000):  # sticky: /tmp
            raise InvalidInput("%s: its %s %s may be written by %s (mode %03o), who could point it at another "
                               "cluster or lift a protection; run 'chmod go-w %s'" % (
                                   path, what, where, "others" if stats.st_mode & 0o002 else "its group",
                                   stats.st_mode & 0o777, where))


def line_of(text, section, key):
    # Return the line of `key` in [contexts.SECTION] (or of the table's header, or of a top-level key), if found.
    current, header = None, None
    for line_number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        match = re.match(r"^\[\s*([^\[\]]+?)\s*\]", stripped)
        if match:
            current = match.group(1).replace('"', "").replace("'", "").replace(" ", "")
            if section is not None and current == "contexts." + section.replace(" ", ""):
                header = line_number
                if key is None:
                    return line_number
            continue
        inside = current == "contexts." + section.replace(" ", "") if section is not None else current is None
        if key is not None and inside and re.match(r"^%s\s*[=.]" % re.escape(key), stripped):
            return line_number
    return header


def check_config(path, text, data, info=None):
    # Return the file's contents, each setting checked, errors naming the file and line.
    def refuse(message, section=None, key=None):
        line = line_of(text, section, key)
        raise InvalidInput("%s%s: %s" % (path, " line %d" % line if line else "", message))

    for key in data:
        if key not in ("default_context", "contexts"):
            refuse("unknown setting %r (the file holds default_context and [contexts.NAME] tables)" % key, None, key)
    contexts = data.get("contexts", {})
    if not isinstance(contexts, dict):
        refuse("contexts must be tables: [contexts.NAME]", None, "contexts")
    checked = {}
    for name, settings in contexts.items():
        if not re.match(_CONTEXT_NAME, name):
            refuse("context name %s must be letters, digits, '.', '_' or '-'" % shown(name), name)
        if not isinstance(settings, dict):
            refuse("contexts.%s must be a table: [contexts.%s]" % (name, name), None, "contexts")
        for key, value in settings.items():
            if key not in CONTEXT_SETTINGS:
                refuse("context %r: unknown setting %r (the settings are %s)"
                       % (name, key, ", ".join(CONTEXT_SETTINGS)), name, key)
            try:
                check_context_setting(key, value)
            except InvalidInput as exc:
                message = exc.message  # "port: port 0 is out of range" reads as "port 0 is out of range"
                if message.startswith("%s: %s " % (key, key)):
                    message = message[len(key) + 2:]
                refuse("context %r: %s" % (name, message), name, key)
        if "url" not in settings and "host" not in settings:
            refuse("context %r names no cluster: set url, or host (and port)" % name, name)
        if "api_key" in settings and "api_key_env" in settings:
            refuse("context %r: set api_key_env or api_key, not both" % name, name, "api_key")
        checked[name] = settings
    default = data.get("default_context")
    if default is not None and default not in checked:
        refuse("default_context %s is not one of the contexts (%s)" % (shown(default), ", ".join(checked) or "none"),
               None, "default_context")
    with_keys = [name for name, settings in checked.items() if "api_key" in settings]
    if with_keys and os.name == "posix":
        mode = (info or os.stat(path)).st_mode & 0o777
        if mode & 0o077:
            refuse("holds an API key (context %r) but others may read it (mode %03o): run 'chmod 600 %s', or "
                   "keep the key in an environment variable named by api_key_env" % (with_keys[0], mode, path))
    return Config(path, default, checked)


def _toml(path, text):
    # Return the contexts file's text parsed, or InvalidInput naming the file and line.
    if sys.version_info >= (3, 11):
        import tomllib
    else:
        import tomli as tomllib
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        where = re.search(r" \(at line (\d+), column \d+\)$", message)
        if where:
            raise InvalidInput("%s line %s: %s" % (path, where.group(1), message[:where.start()])) from None
        raise InvalidInput("%s: %s" % (path, message)) from None
    except RecursionError:
        raise InvalidInput("%s: its values are nested too deeply to be a contexts file" % path) from None


def read_config(path, named_by=None, timeout=DEFAULT_TIMEOUT):
    # Return the contexts file, parsed and checked; no file at the default place is no contexts.
    # TOML is parsed only when there is a file: no other run pays for it.
    try:
        if not named_by and os.path.exists(path) and not os.path.isfile(path):
            # Only a file named by --config or JADEVECTORDB_CONFIG is read as a stream: a FIFO
            # at the default place would make every command wait for a writer.
            raise InvalidInput("%s is not a regular file; name a FIFO or pipe with --config" % path)
        raw, info = read_file(path, MAX_CONFIG_SIZE, timeout)  # a pipe too: --config <(vault read ...)
    except FileNotFoundError:
        if named_by:
            raise InvalidInput("%s: no such file: %s" % (named_by, path)) from None
        return Config(path, None, {})
    except OSError as exc:
        raise InvalidInput("cannot read %s: %s" % (path, exc.strerror or exc)) from None
    except InvalidInput as exc:  # --config /dev/zero must not eat the memory, nor a FIFO hang every command
        raise InvalidInput(exc.message if exc.message.endswith("--config") else
                           "%s; it is not a contexts file" % exc.message) from None
    check_file_is_ours(path, info)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput("%s is not UTF-8 text (byte %d)" % (path, exc.start)) from None
    return check_config(path, text, _toml(path, text), info)


def no_file(config):
    # 'there is no contexts file at PATH', for messages, when there is none; else None.
    return None if os.path.exists(config.path) else "there is no contexts file at %s" % config.path


def chosen_context(config, flag, flag_name="--context"):
    # Return the context this run uses: --context (or the library's `name`), else JADEVECTORDB_CONTEXT,
    # else the file's default_context.
    env = os.environ.get(ENV_CONTEXT)
    name, chosen_by = ((flag, flag_name) if flag is not None else (env, ENV_CONTEXT) if env else
                       (config.default_context, "default_context"))
    if name is None:
        return None
    if name not in config.contexts:
        known = ("the contexts are " + ", ".join(config.contexts) if config.contexts else
                 no_file(config) or "%s has no contexts" % config.path)
        raise InvalidInput("%s: no context %s; %s" % (chosen_by, shown(name), known))
    return Context(name, chosen_by, config.contexts[name], config.path)


def context_key(context):
    # Return a context's API key: from the environment variable it names (which must then be set), or the file.
    settings = context.settings
    if "api_key_env" in settings:
        value = os.environ.get(settings["api_key_env"])
        if not value or not value.strip():
            raise InvalidInput("context %r takes its API key from %s, which is %s" % (
                context.name, settings["api_key_env"], "empty" if value is not None else "not set"))
        return value
    return settings.get("api_key")


def context_ca_cert(context):
    # Return a context's ca_cert; a relative path is relative to the contexts file, as kubectl's are.
    ca_cert = context.settings.get("ca_cert")
    if not ca_cert:
        return None
    return os.path.join(os.path.dirname(os.path.abspath(context.path)), os.path.expanduser(ca_cert))


def context_url(settings):
    # Return where a context points, as the client will call it.
    if "url" in settings:
        return ",".join(check_urls(settings["url"]))
    return ",".join(check_hosts(settings["host"], settings.get("port", DEFAULT_PORT)))


def lazily(check, value, where):
    # Return a source's value, checked only when it is the one used: a bad one lower down stops nothing.
    return lambda: check(value, where)


def context_source(context):
    # Return a context's settings: its address (whole), key (read when used), ca_cert (relative to
    # the file), and the others as the file gives them (checked when it was read).
    values = dict(context.settings)
    if "host" in values:
        values.setdefault("port", DEFAULT_PORT)
    if "api_key_env" in values or "api_key" in values:
        values["api_key"] = lambda: context_key(context)
    if "ca_cert" in values:
        values["ca_cert"] = context_ca_cert(context)
    name = "context %r" % context.name
    key_from = "%s (the api_key_env of %s)" % (values["api_key_env"], name) if "api_key_env" in values else name
    return Source(name, values, {"ca_cert": name + ": ca_cert", "api_key": key_from})


def environment_source(env):
    # Return the JADEVECTORDB_* variables; each is checked when it is the one used. An empty one is
    # not set, except the key's: set but empty is a mistake, never "send no key".
    values, labels = {}, {}
    for given in SETTINGS:
        if given.env and given.name not in CHOOSING and (env.get(given.env) or (
                given.name == "api_key" and given.env in env)):
            values[given.name], labels[given.name] = lazily(given.check, env[given.env], given.env), given.env
    return Source("the environment", values, labels)


def flag_source(args):
    # Return the settings given on the command line. A --host or --port flag alone takes the other part
    # of the address from JADEVECTORDB_HOST or JADEVECTORDB_PORT (this shell's), else the default.
    values, labels = {}, {}
    for given in SETTINGS:
        value = getattr(args, given.name, None) if given.option and given.name not in CHOOSING else None
        if value is not None and given.name not in ("host", "port"):
            flag = given.option.flags[-1]
            values[given.name] = lazily(given.check, value, flag)
            labels[given.name] = flag
    if args.url is None and (args.host, args.port) != (None, None):
        env = environment_source(os.environ)
        for part, flag in (("host", "--host"), ("port", "--port")):
            given = getattr(args, part)
            values[part] = given if given is not None else env.values.get(part, ADDRESS_DEFAULTS[part])
            labels[part] = flag if given is not None else env.labels.get(part, "the default")
    return Source("the command line", values, labels)


def setting_sources(given, context, environment):
    # Return where settings come from, highest first: `given` (the flags, or the library's arguments),
    # a context named (--context, or from_context's name), the environment (the command line's only), a
    # context chosen by JADEVECTORDB_CONTEXT or default_context, the defaults.
    ours = [context_source(context)] if context else []
    named = bool(ours) and context.chosen_by in ("--context", "--contexts", "name")
    return [given] + (ours if named else []) + ([environment] if environment else []) + \
        ([] if named else ours) + [DEFAULT_SOURCE]


def client_settings(resolved):
    # ClusterCLI's arguments from resolved settings: each client setting, and verify from insecure and ca_cert.
    ca_cert = resolved.get("ca_cert")
    if ca_cert and not resolved.get("insecure") and not os.path.isfile(ca_cert):
        raise InvalidInput("%s: %s" % (resolved.sources["ca_cert"], "no such file: %s" % shown(ca_cert)
                                       if not os.path.exists(ca_cert) else "not a regular file: %s" % shown(ca_cert)))
    settings = {name: resolved[name] for name in CLIENT_SETTINGS if resolved.get(name) is not None}
    settings["verify"] = False if resolved.get("insecure") else (ca_cert or True)
    return settings


# --------------------------------------------------------------------------------------------------
# The wire: one _Transport per client
# --------------------------------------------------------------------------------------------------


class _Transport:
    # The wire, for one client: a requests session whose connections know whether a request left,
    # each origin's proxy, one deadline per call (a wait's too), retries of a GET, failover between
    # masters, redirects, the answer read within its limit and decoded, and each failure made the
    # ClusterError that says what is known of it.

    def __init__(self, urls, timeout, retries, verify, auth, max_response_size):
        import logging
        import threading
        import requests
        import urllib3
        self.base_urls, self.timeout, self.retries = urls, timeout, retries
        self.max_response_size = max_response_size
        self._requests = requests
        self._timeout_class = urllib3.Timeout
        self._log = logging.getLogger("cluster_cli")
        self._local = threading.local()  # per thread: the exchange on the wire, an outer deadline
        self._session = _new_session(self._local)
        self._session.headers.update(HEADERS)
        if verify is True:  # as requests does, since the session no longer reads the environment itself
            verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
        self._verify = verify
        self._proxies = {}  # origin -> the proxy requests to it go through (None: direct), from the environment
        self._pid = os.getpid()  # a forked child makes its own connections (see request)
        self._auth = auth
        self._current = 0  # the master that answered last is asked first
        self.retrying = None  # hears, once, the first retry: a sentence saying what is retried and for how long

    def close(self):
        self._session.close()

    @property
    def answered_by(self):
        return self.base_urls[self._current]

    @contextmanager
    def bounded(self, deadline):
        # Keep every call in this block from running past `deadline` (time.monotonic()): a wait's end.
        outer = getattr(self._local, "deadline", None)
        self._local.deadline = deadline if outer is None else min(outer, deadline)
        try:
            yield
        finally:
            self._local.deadline = outer

    @contextmanager
    def captured(self):
        # Keep the answers in this block as they came, (status, body) (--raw, bundle).
        self._local.bodies = []
        try:
            yield self._local.bodies
        finally:
            self._local.bodies = None

    def request(self, method, path, *ids, params=None, body=None):
        # Send a request and return its answer decoded: the one place for path quoting, the deadline,
        # retries, failover and errors.
        from urllib.parse import quote
        if self._pid != os.getpid():  # a forked child: the pooled connections are the parent's
            self._pid, self._local = os.getpid(), __import__("threading").local()
            self._session = _new_session(self._local)
            self._session.headers.update(HEADERS)
        path = path.format(*(quote(i, safe="") for i in ids))
        change = method != "GET"
        started = time.monotonic()
        deadline = started + self.timeout
        outer = getattr(self._local, "deadline", None)
        if outer is not None:
            deadline = min(deadline, outer)
        self._local.budget = deadline - started  # for messages: the time this call was given
        attempt = 0
        while True:
            try:
                response, content = self._send(method, path, params, body, deadline)
            except ClusterUnreachable as exc:
                if change or not exc.retryable or not self._pause(attempt, None, deadline, exc.message):
                    raise
                attempt += 1
                continue
            status, reason = response.status_code, response.reason
            if status in RETRYABLE_STATUS and not change and\
                    self._pause(attempt, response.headers.get("Retry-After"), deadline,
                                "%s answered HTTP %d" % (self.answered_by, status)):
                attempt += 1
                continue
            captured = getattr(self._local, "bodies", None)
            if captured is not None:  # --raw and bundle: the status and the body as it came
                captured.append((status, content))
            body = [content]  # decode() empties it: the bytes go as soon as they are text
            del content, response
            try:
                return decode(status, reason, body, method, attempt + 1, time.monotonic() - started,
                              self.max_response_size)
            except AuthenticationFailed as exc:  # say which: no key, or a key the cluster refused
                exc.key_sent = self._auth is not None
                exc.hint = "the API key sent was refused; pass a valid one as api_key" if exc.key_sent else\
                    "no API key was sent; pass one as api_key"
                raise

    def _pause(self, attempt, retry_after, deadline, why):
        # Sleep before retry number attempt+1; False when no retry is left or it would end past the deadline.
        # The first retry of this client is told to `retrying`, with how long the retries may take.
        if attempt >= self.retries:
            return False
        delay = FIRST_RETRY_PAUSE * 2 ** attempt
        if retry_after is not None:
            try:  # the least the server asks for: "Retry-After: 0" must not burn every retry at once
                delay = max(delay, float(retry_after))
            except ValueError:
                pass  # an HTTP date; the back-off will do
        delay = min(RETRY_PAUSE_CAP, delay) if delay == delay else RETRY_PAUSE_CAP
        if time.monotonic() + delay >= deadline:
            return False
        if self.retrying is not None:
            most = min(deadline - time.monotonic(), sum(min(RETRY_PAUSE_CAP, FIRST_RETRY_PAUSE * 2 ** k)
                                                        for k in range(attempt, self.retries)))
            self.retrying("%s; retrying for up to %s (retries and timeout set how long; Ctrl-C stops)"
                          % (why, seconds(most)))
            self.retrying = None
        self._log.debug("retrying in %.2fs", delay)
        CLOCK.sleep(delay)
        return True

    def _send(self, method, path, params, body, deadline):
        # Ask each master in turn; move on only when the request cannot have reached one.
        failures = []
        count = len(self.base_urls)
        for step in range(count):
            index = (self._current + step) % count
            try:
                response, content = self._follow(method, self.base_urls[index] + path, params, body,
                                                  deadline, count - step)
            except MaybeApplied:
                raise
            except ClusterUnreachable as exc:
                failures.append(exc)
                continue
            self._current = index
            return response, content
        error = ClusterUnreachable("; ".join(exc.message for exc in failures),
                                   next((exc.hint for exc in failures if exc.hint), None))
        error.retryable = any(exc.retryable for exc in failures)  # a name that does not resolve: at once
        error.tls = next((exc.tls for exc in failures if getattr(exc, "tls", None)), None)
        raise error

    def _follow(self, method, url, params, body, deadline, masters_left):
        # Send one request, following a few redirects for a GET and none for a change.
        from urllib.parse import urljoin, urlsplit
        auth = self._auth
        origin = urlsplit(url)[:2]
        for _ in range(MAX_REDIRECTS + 1):
            response, content = self._exchange(method, url, params, body, auth, deadline, masters_left)
            status = response.status_code
            if method != "GET" and 300 <= status < 400:
                location = response.headers.get("Location")
                raise Redirected("the cluster answered %s %s with HTTP %d, redirecting to %s; redirects are "
                                 "not followed for changes, so this request did not apply it"
                                 % (method, urlsplit(url).path, status,
                                    hide_credentials(location) if location else "nowhere (no Location)"),
                                 status, location)
            if status not in REDIRECT_STATUS or not response.headers.get("Location"):
                return response, content
            location = response.headers["Location"]
            try:
                target = urljoin(url, location)
                parts = urlsplit(target)
                parts.port  # noqa: B018  (ValueError for a port that is not a number)
            except ValueError:
                raise BadResponse("the cluster redirected to a malformed URL: %s" % shown(location), status) from None
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise BadResponse("the cluster redirected to %s, which is not an http(s) URL" % shown(location),
                                  status)
            if urlsplit(url).scheme == "https" and parts.scheme == "http":
                raise BadResponse("the cluster redirected from https to http (%s); not followed"
                                  % hide_credentials(target), status)
            if parts[:2] != origin:
                auth = None  # the key goes only to the origin it was given for
            self._log.debug("%s %s -> %d, following to %s", method, url, status, hide_credentials(target))
            url, params = target, None
        raise BadResponse("the cluster redirected more than %d times" % MAX_REDIRECTS)

    def proxy_for(self, url):
        # Return the proxy requests to url go through, decided once per origin (see ClusterCLI.proxy_for).
        from urllib.parse import urlsplit
        if not isinstance(url, str):
            raise InvalidInput("url must be text, got %s" % type(url).__name__, param="url")
        try:
            origin = "%s://%s" % urlsplit(url)[:2]
        except ValueError as exc:
            raise InvalidInput("url: %s is not a URL (%s)" % (shown(url), exc), param="url") from None
        if origin not in self._proxies:
            from requests.utils import get_environ_proxies, select_proxy
            proxy = select_proxy(origin, get_environ_proxies(origin)) or None
            if proxy is not None:
                check_proxy(proxy)
            self._proxies[origin] = proxy
        return self._proxies[origin]

    def _exchange(self, method, url, params, body, auth, deadline, masters_left):
        # Make one HTTP exchange, the whole body read, within the deadline; return (response, body bytes).
        exceptions = self._requests.exceptions
        from urllib.parse import urlsplit
        remaining = deadline - time.monotonic()
        scheme, netloc = urlsplit(url)[:2]
        proxy = self.proxy_for(url)
        where = "%s://%s" % (scheme, netloc) + (" through the proxy %s" % hide_credentials(proxy) if proxy else "")
        if remaining <= 0:
            raise ClusterUnreachable("no answer from %s within %s" % (where, seconds(self._local.budget)))
        exchange = _Exchange()
        self._local.exchange = exchange
        started = time.monotonic()
        guard = watchdog()
        guard.watch(exchange, deadline)
        connect_within = remaining / max(1, masters_left)  # leave the other masters their share
        try:
            timeout = self._timeout_class(connect=connect_within, read=remaining)
            response = self._session.request(method, url, params=params, json=body, timeout=timeout, auth=auth,
                                             verify=self._verify, allow_redirects=False, stream=True,
                                             proxies={scheme: proxy} if proxy else None)
            try:
                status = response.status_code
                limit = self.max_response_size if status < 300 else ERROR_BODY_LIMIT
                content = b"" if 300 <= status < 400 else read_body(response, limit, truncate=status >= 400)
            finally:
                response.close()
            if exchange.expired:  # the body was cut short by the deadline, whatever it looked like
                raise exceptions.ReadTimeout("deadline")
        except ResponseTooLarge as exc:
            if method != "GET":
                exc.hint = "the %s was answered HTTP %d, so it may have been applied: check the cluster" % (
                    method, exc.status_code)
            raise
        except Exception as exc:
            raise self._failure(method, url, where, exc, exchange, exchange.expired, connect_within) from None
        finally:
            guard.release(exchange)
            self._local.exchange = None
        self._log.debug("%s %s%s -> %d (%.1f ms, %d bytes)", method, response.url,
                        " via %s" % hide_credentials(proxy) if proxy else "", status,
                        (time.monotonic() - started) * 1000, len(content))
        return response, content

    def _failure(self, method, url, where, exc, exchange, timed_out, connect_within):
        # Return the ClusterError for an exchange that raised: did the request leave, and what broke?
        exceptions = self._requests.exceptions
        sent = exchange.conn is not None and not exchange.connect_failed
        if isinstance(exc, exceptions.ConnectTimeout) or (timed_out and not sent):
            error = ClusterUnreachable("cannot reach %s: no connection within %s" % (where, seconds(connect_within)))
        elif not sent and isinstance(exc, exceptions.Timeout):  # connected, then a TLS handshake that never ended
            error = ClusterUnreachable("cannot reach %s: no TLS handshake within %s" % (where, seconds(connect_within)))
        elif not sent and isinstance(exc, exceptions.ConnectionError):
            error = unreachable(exc, where)
        elif not sent:
            return ClusterError("cannot send the request to %s: %s" % (where, _reason(exc)))
        elif timed_out or isinstance(exc, exceptions.Timeout):
            error = ClusterUnreachable("no complete answer from %s within %s" % (where, seconds(self._local.budget)))
        else:
            error = ClusterUnreachable("the connection to %s failed after the request was sent: %s"
                                       % (where, _reason(exc)))
        self._log.debug("%s %s -> %s", method, url, error.message)
        if sent and method != "GET":
            return MaybeApplied("%s; the %s may or may not have been applied" % (error.message, method))
        return error


# --------------------------------------------------------------------------------------------------
# The client
# --------------------------------------------------------------------------------------------------


# Each endpoint, by the client method that calls it: (method, path under the API prefix; /health is
# the node's own). What a command sends is named from here, never written twice.
ENDPOINTS = {"health": ("GET", "/health"), "cluster_status": ("GET", "/cluster/status"),
             "diagnostics": ("GET", "/cluster/diagnostics"), "metrics": ("GET", "/cluster/metrics"),
             "list_nodes": ("GET", "/cluster/nodes"), "add_node": ("POST", "/cluster/nodes"),
             "remove_node": ("DELETE", "/cluster/nodes/{}"), "node_health": ("GET", "/cluster/nodes/{}/health"),
             "list_shards": ("GET", "/cluster/shards"), "shard_status": ("GET", "/cluster/shards/{}"),
             "migrate_shard": ("POST", "/cluster/shards/{}/migrate")}


class ClusterCLI:
    """Client for the /api/v1/cluster endpoints of a JadeVectorDB cluster.

    Methods return plain dicts and lists (list endpoints unwrapped), never
    print, and raise a ClusterError subclass on failure. A change (POST,
    DELETE) is sent at most once and never follows a redirect; `timeout` is
    the whole time one call may take, retries and the body included.

    Every numeric field of the contract is a number (or None) whatever the
    server sent: "125432" is 125432; a value that is not a number is None and
    its field's name is added to `not_numbers`, a set the caller may read.
    An enum value in lower case ("healthy") is given in the contract's form.

    `api_prefix` is the path the API is served under (default /api/v1). Left
    out, a read that finds only JadeVectorDB's own prefix (/v1) moves there
    (`api_prefix` then says so, and `notice`, if set, hears it); a change is
    never sent to a guessed prefix.
    """

    def __init__(self, host: Union[str, Sequence[str]] = "localhost", port: int = DEFAULT_PORT, *,
                 url: Union[str, Sequence[str], None] = None,
                 api_key: Optional[str] = None, timeout: float = DEFAULT_TIMEOUT,
                 retries: int = DEFAULT_RETRIES, verify: Union[bool, str] = True,
                 max_response_size: Union[int, str] = DEFAULT_MAX_RESPONSE_SIZE,
                 api_prefix: Optional[str] = None):
        port = check_port(port, "port")
        # The cluster API's path. Not given: the contract's, and for reads JadeVectorDB's own (/v1) when
        # only that answers; `notice` (a function of a sentence, if set) hears of such a switch.
        self.api_prefix = DEFAULT_API_PREFIX if api_prefix is None else check_api_prefix(api_prefix)
        self._prefix_given, self._prefix_seen = api_prefix is not None, False
        self._prefix_lock = __import__("threading").Lock()
        self.notice = None
        self.base_urls = check_urls(url) if url else check_hosts(host, port)
        self.timeout = check_seconds(timeout, "timeout")
        self.retries = check_count(retries, "retries")
        self.max_response_size = check_size(max_response_size)
        if isinstance(verify, str) and not os.path.exists(verify):
            raise InvalidInput("ca_cert: no such file or directory: %s" % shown(verify), param="ca_cert")
        if not isinstance(verify, (bool, str)):
            raise InvalidInput("verify must be True, False or a CA bundle path", param="verify")
        auth = _BearerAuth(check_api_key(api_key)) if api_key else None
        self._transport = _Transport(self.base_urls, self.timeout, self.retries, verify, auth, self.max_response_size)
        self.context = None  # the contexts file's name for this cluster, when made by from_context()
        self._protected = False  # a protected context not confirmed: every change is refused
        self.not_numbers = set()  # numeric fields the cluster sent something else in (given as None)
        self._lost = False

    @classmethod
    def from_context(cls, name: Optional[str] = None, *, config: Optional[str] = None,
                     confirm: Optional[str] = None, **overrides: Any) -> ClusterCLI:
        """Return a client for a cluster of the contexts file, as the CLI's --context makes one.

        `name` is the context (else JADEVECTORDB_CONTEXT, else the file's default_context);
        `config` is the file (else JADEVECTORDB_CONFIG, else the XDG default place). The client
        takes the context's address, key (api_key_env or api_key), timeout and ca_cert; keyword
        arguments (url=, host=, port=, timeout=, retries=, ...) override them, the address as one
        setting. A protected context's client reads, and refuses every change (ProtectedContext,
        nothing sent) unless `confirm` repeats the context's name, as the CLI asks for it typed.
        """
        for param, value in (("name", name), ("confirm", confirm)):
            if value is not None and not isinstance(value, str):
                raise InvalidInput("%s must be a context's name, got %s" % (param, type(value).__name__), param=param)
        if config is not None and not isinstance(config, (str, os.PathLike)):
            # open(1) would be stdout, and closing it the caller's
            raise InvalidInput("config must be a path, got %s" % type(config).__name__, param="config")
        unknown = sorted(set(overrides) - set(CLIENT_SETTINGS))
        if unknown:
            raise InvalidInput("from_context() takes no setting %s; the settings are %s" % (
                ", ".join(map(repr, unknown)), ", ".join(CLIENT_SETTINGS)), param=unknown[0])
        found = read_config(os.fspath(config), "config") if config is not None else read_config(*config_path(None))
        context = chosen_context(found, name, "name")
        if context is None:
            raise InvalidInput("no context named, and " + (no_file(found) or "%s has no default_context" % found.path),
                               param="name")
        given = dict(overrides)  # an address passed (url, host or port) replaces the context's, whole
        verify = given.pop("verify", None)
        settings = client_settings(resolve(setting_sources(Source("the arguments", given, {}), context, None)))
        if verify is not None:
            settings["verify"] = verify
        client = cls(**settings)
        client.context = context.name
        client._protected = bool(context.settings.get("protected")) and confirm != context.name
        return client

    def __repr__(self):
        return "ClusterCLI(%s)" % ",".join(self.base_urls)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def close(self) -> None:
        """Close the keep-alive connections."""
        self._transport.close()

    @property
    def answered_by(self) -> str:
        """Return the base URL of the master that answered last."""
        return self._transport.answered_by

    def proxy_for(self, url: str) -> Optional[str]:
        """Return the proxy requests to url go through (HTTP_PROXY, HTTPS_PROXY or ALL_PROXY, NO_PROXY
        honoured), or None: decided once per origin, so every request and message agree."""
        return self._transport.proxy_for(url)

    # -- endpoints -----------------------------------------------------------

    def health(self) -> dict:
        """GET /health: liveness of the node this client talks to."""
        return self._get_object("health")

    def cluster_status(self) -> dict:
        """GET /api/v1/cluster/status."""
        return self._get_object("cluster_status")

    def diagnostics(self) -> dict:
        """GET /api/v1/cluster/diagnostics."""
        return self._get_object("diagnostics")

    def metrics(self) -> dict:
        """GET /api/v1/cluster/metrics."""
        return self._get_object("metrics")

    def list_nodes(self) -> list:
        """GET /api/v1/cluster/nodes, unwrapped to a list."""
        return unwrap_list(self._request(*ENDPOINTS["list_nodes"]), "nodes")

    def add_node(self, node_id: str, address: str) -> dict:
        """POST /api/v1/cluster/nodes: join a node (sent once, never retried)."""
        body = {"node_id": check_id(node_id, "node_id"), "address": check_address(address)}
        answer = expect_object(self._request(*ENDPOINTS["add_node"], body=body))
        return check_applied(answer, "added", "add node %s" % node_id)

    def remove_node(self, node_id: str) -> dict:
        """DELETE /api/v1/cluster/nodes/{id}: its shards are redistributed (sent once)."""
        check_id(node_id, "node_id")
        answer = expect_object(self._request(*ENDPOINTS["remove_node"], node_id))
        return check_applied(answer, "removed", "remove node %s" % node_id)

    def node_health(self, node_id: str) -> dict:
        """GET /api/v1/cluster/nodes/{id}/health."""
        return self._get_object("node_health", check_id(node_id, "node_id"))

    def list_shards(self, database_id: Optional[str] = None, node_id: Optional[str] = None,
                    status: Optional[str] = None) -> list:
        """GET /api/v1/cluster/shards, filtered by the server (optional parameters)."""
        params = {name: check_id(value, name) for name, value in
                  (("database_id", database_id), ("node_id", node_id), ("status", status)) if value}
        return unwrap_list(self._request(*ENDPOINTS["list_shards"], params=params or None), "shards")

    def shard_status(self, shard_id: str) -> dict:
        """GET /api/v1/cluster/shards/{id}, with its latest migration."""
        return self._get_object("shard_status", check_id(shard_id, "shard_id"))

    def migrate_shard(self, shard_id: str, target_node: str, source_node: Optional[str] = None,
                      strategy: str = "LIVE_COPY") -> dict:
        """POST /api/v1/cluster/shards/{id}/migrate (sent once, never retried)."""
        body = {"target_node": check_id(target_node, "target_node"), "strategy": check_strategy(strategy)}
        if source_node is not None:
            body["source_node"] = check_id(source_node, "source_node")
        answer = expect_object(self._request(*ENDPOINTS["migrate_shard"], check_id(shard_id, "shard_id"), body=body))
        return check_applied(answer, None, "migrate shard %s" % shard_id)

    # -- plans: rebalance and drain ----------------------------------------------

    def identity(self, nodes: Optional[list] = None, status: Optional[dict] = None) -> str:
        """Return what names this cluster in plans, journals and locks: its cluster_name when it sends
        one, else a digest of its node IDs (a failover to another master keeps it)."""
        name = field(self.cluster_status() if status is None else status, "cluster_name")
        if isinstance(name, str) and name:
            return "name:" + name
        import hashlib
        ids = sorted(nodes_by_id(self.list_nodes() if nodes is None else nodes))
        return "nodes:" + hashlib.sha256("\n".join(ids).encode("utf-8")).hexdigest()[:16]

    def in_flight(self, shards: list) -> dict:
        """Return {shard_id: target node} of the MIGRATING shards, read from each one's migration."""
        going = {}
        for shard in shards:
            if field(shard, "status") == "MIGRATING":
                shard_id = id_of(shard, "shard_id", "a shard")
                migration = field(self.shard_status(shard_id), "migration")
                if field(migration, "status") in RUNNING_MIGRATION and isinstance(field(migration, "target_node"), str):
                    going[shard_id] = field(migration, "target_node")
        return going

    def plan_rebalance(self, balance_by: str = "shards") -> dict:
        """Return a plan that evens out the HEALTHY nodes' primaries (or vectors); reads only."""
        nodes, shards = self.list_nodes(), self.list_shards()
        plan = rebalance_plan(nodes, shards, balance_by, self.in_flight(shards))
        plan["cluster"] = self.identity(nodes)
        return plan

    def plan_drain(self, node_id: str) -> dict:
        """Return a plan that moves every primary it can off node_id (those that cannot: `stuck`); reads only."""
        nodes, shards = self.list_nodes(), self.list_shards()
        plan = drain_plan(nodes, shards, check_id(node_id, "node_id"), self.in_flight(shards))
        plan["cluster"] = self.identity(nodes)
        return plan

    def explain_shard(self, shard_id: str) -> dict:
        """Return where a shard's primary could move and why not elsewhere; reads only."""
        check_id(shard_id, "shard_id")
        self.shard_status(shard_id)  # a 404 for a shard the cluster does not have
        shards = self.list_shards()
        return explain_shard(self.list_nodes(), shards, shard_id, self.in_flight(shards))

    def stale_moves(self, plan: dict, moves: Optional[list] = None) -> list:
        """Return the moves of a plan (or these of its moves) that no longer apply to the cluster as it
        is now, each with why. With all of them, the plan as a whole is checked too: a plan of another
        cluster, or made when the primaries per node were not what they are now, is stale entire
        (a move {"shard_id": None} says why)."""
        nodes_list = self.list_nodes()
        nodes = nodes_by_id(nodes_list)
        listed = self.list_shards()
        flying = self.in_flight(listed) if moves is None else {}
        shards = {id_of(shard, "shard_id", "a shard"): shard for shard in listed}
        stale = []
        if moves is None:
            moves = check_plan(plan)["moves"]
            this = self.identity(nodes_list) if plan.get("cluster") else None
            if this and plan["cluster"] != this:
                stale.append({"shard_id": None, "reason": "it was made for another cluster (%s, this one is %s)"
                              % (plan["cluster"], this)})
            counts = _cluster_loads(nodes_list, listed, flying)[2]
            before = plan.get("before")
            if isinstance(before, dict) and before != counts:
                changed = ["%s %s -> %s" % (n, before.get(n, "none"), counts.get(n, "none"))
                           for n in sorted(set(before) | set(counts)) if before.get(n) != counts.get(n)]
                stale.append({"shard_id": None, "reason": "the primaries per node changed since it was made: "
                              + ", ".join(changed[:5]) + (", ..." if len(changed) > 5 else "")})
        for move in moves:
            shard, target = shards.get(move["shard_id"]), move["target_node"]
            if shard is None:
                why = "the shard is not in the cluster"
            elif copies(shard)[0] != move["source_node"]:
                why = "its primary is on %s now, not %s" % (copies(shard)[0], move["source_node"])
            elif target not in nodes:
                why = "%s is not in the cluster" % target
            elif field(nodes[target], "status") != "HEALTHY":
                why = "%s is %s" % (target, fmt_text(field(nodes[target], "status")) or "not HEALTHY")
            elif target in copies(shard):
                why = "%s already holds a copy" % target
            elif field(shard, "status") not in MOVABLE_SHARD:
                why = "the shard is %s" % fmt_text(field(shard, "status"))
            else:
                continue
            stale.append(dict(move, reason=why))
        return stale

    def apply_plan(self, plan: dict, max_concurrent: int = 1, strategy: str = "LIVE_COPY",
                   timeout: Optional[float] = DEFAULT_PLAN_TIMEOUT,
                   progress: Optional[Callable[[str, dict], None]] = None,
                   poll_interval: float = DEFAULT_POLL_INTERVAL, max_per_node: int = 1,
                   stall_timeout: float = DEFAULT_STALL_TIMEOUT, following: Sequence[dict] = (),
                   done: Sequence[dict] = (), steer: Optional[Callable[[], dict]] = None) -> dict:
        """Carry out a plan's moves, at most max_concurrent migrations at a time and max_per_node
        into or out of one node, each POST naming its source so the cluster refuses a move whose
        shard has moved meanwhile.

        Checks the arguments, then the plan against the cluster (StalePlan), before anything is
        sent. Before each move its target's health is read again. A move ends COMPLETED, FAILED
        (with the cluster's reason), STALLED (no progress for stall_timeout seconds; it may still be
        running), UNKNOWN (the cluster no longer reports its migration, and the shard is not MIGRATING)
        or SKIPPED (its target was not HEALTHY); after any but COMPLETED, no new move goes into or out
        of its nodes. A move the cluster refuses because a migration of its shard already runs (another
        operator's) is followed when that one goes to the same target, else left out (`stale`). `timeout`
        bounds the whole run. Returns the report: each of those lists, `running` (when the time ran
        out) and `not_started`, and the verification of the plan's `after` against the cluster.

        Steering: steer(), if given, is asked at each scheduling round and may return max_concurrent and
        max_per_node (new limits; a running migration is never cancelled) and stop (no new move starts;
        those running are followed to their end, and the moves not started say so).

        Resuming: `following` are moves already started (with their migration_id), followed before
        any new one starts, and `done` the moves completed earlier; then only the other moves are
        checked against the cluster, and those that no longer fit are left out (`stale`).

        progress(event, move) hears of each move "sending" (its POST is about to go), "started",
        "completed", "failed", "stalled", "unknown" or "skipped", and each "poll" of it; "lost" when a poll
        finds the cluster unreachable and "back" when it answers again (once each way); if it raises,
        no new move starts, those running are waited for, and a ClusterError carrying the report is
        raised from the callback's exception. Any ClusterError raised once a move was sent, and a
        KeyboardInterrupt, carry the report as it stood (`.report`).
        """
        check_plan(plan)
        self._may_change()
        for value, name in ((max_concurrent, "max_concurrent"), (max_per_node, "max_per_node")):
            check_count(value, name, 1000)
            if value < 1:
                raise InvalidInput("%s must be at least 1" % name, param=name)
        check_strategy(strategy)
        poll_interval = check_seconds(poll_interval, "poll_interval")
        stall_timeout = check_seconds(stall_timeout, "stall_timeout")
        if progress is not None and not callable(progress):
            raise InvalidInput("progress must be a function of (event, move), got %s" % type(progress).__name__,
                               param="progress")
        deadline = None if timeout is None else CLOCK.now() + check_seconds(timeout, "timeout")
        resumed = {m["shard_id"] for m in list(following) + list(done)}
        rest = [dict(move) for move in plan["moves"] if move["shard_id"] not in resumed]
        if resumed:
            stale = self.stale_moves(plan, rest)
            rest = [m for m in rest if m["shard_id"] not in {s["shard_id"] for s in stale}]
        else:
            stale = self.stale_moves(plan)
            if stale:
                raise StalePlan("plan is stale, nothing was sent: " + "; ".join(
                    ("%s %s -> %s: " % (m["shard_id"], m["source_node"], m["target_node"]) if m["shard_id"] else "")
                    + m["reason"] for m in stale), stale)
        broken = []  # the progress callback's exception, once it raised: it is not called again

        def notify(event, move):
            if progress is None or broken:
                return
            try:
                progress(event, move)
            except Exception as exc:  # the caller's code: finish what runs, then say so
                broken.append(exc)

        running = [dict(move, _seen=CLOCK.now()) for move in following]
        self._lost = False  # whether the last poll found the cluster unreachable (said once, and when it is back)
        report = {"completed": list(map(dict, done)), "failed": [], "stalled": [], "unknown": [], "skipped": [],
                  "running": running, "not_started": rest, "stale": stale if resumed else [],
                  "kind": plan.get("kind"), "node_id": plan.get("node_id"), "verified": None}
        try:
            self._carry_out(report, max_concurrent, max_per_node, strategy, deadline, notify, broken,
                            poll_interval, stall_timeout, steer)
        except (ClusterError, KeyboardInterrupt) as exc:
            exc.report = self._settled(report)
            raise
        self._settled(report)
        if broken:
            raise ProgressFailed("the progress callback raised %s: %s; no new move was started after it, and "
                                 "those running were waited for" % (type(broken[0]).__name__, broken[0]),
                                 report) from broken[0]
        if not any(report[key] for key in ("running", "not_started", "failed", "stalled", "unknown", "skipped",
                                           "stale")):
            report["verified"], report["differences"] = self._compare_with_plan(plan)
        return report

    def _carry_out(self, report, max_concurrent, max_per_node, strategy,
                   deadline, notify, broken,
                   poll_interval, stall_timeout, steer=None):
        # apply_plan's loop: poll the moves running, start moves while there is room, until all ended.
        running, pending = report["running"], report["not_started"]
        blocked = {}  # node -> why no new move goes into or out of it
        stopped = False
        for _ in rounds(poll_interval, deadline):
            steering = steer() if steer is not None else None
            if steering:
                max_concurrent = steering.get("max_concurrent") or max_concurrent
                max_per_node = steering.get("max_per_node") or max_per_node
                if steering.get("stop") and not stopped:
                    stopped = True
                    for move in pending:
                        move["error"] = "not started: the run was stopped ('operations stop')"
            for move in list(running):
                how = self._poll_move(move, report, notify, stall_timeout)
                if how and how != "completed":
                    for node in (move["source_node"], move["target_node"]):
                        blocked.setdefault(node, "a move of %s %s there" % (move["shard_id"], how.upper()))
            busy = {}
            for move in running:
                for node in (move["source_node"], move["target_node"]):
                    busy[node] = busy.get(node, 0) + 1
            kept, index = [], 0  # the moves looked at and left for later; pending[index:] not looked at
            try:
                while index < len(pending) and len(running) < max_concurrent and not broken and not stopped and\
                        (deadline is None or CLOCK.now() < deadline):
                    move = pending[index]
                    nodes = (move["source_node"], move["target_node"])
                    if any(node in blocked or busy.get(node, 0) >= max_per_node for node in nodes):
                        kept.append(move)
                        index += 1
                        continue
                    try:
                        target = field(self.node_health(move["target_node"]), "status")
                    except ClusterError as exc:
                        if not exc.retryable:
                            raise
                        break  # the cluster did not answer: this move is looked at again next round
                    index += 1
                    if target != "HEALTHY":
                        report["skipped"].append(dict(move, error="%s is %s" % (move["target_node"],
                                                                                 fmt_text(target) or "not HEALTHY")))
                        blocked.setdefault(move["target_node"], "it was %s" % (fmt_text(target) or "not HEALTHY"))
                        notify("skipped", report["skipped"][-1])
                        continue
                    notify("sending", move)
                    if broken:  # what was to be said first could not be (a journal not written): not sent
                        index -= 1
                        break
                    try:
                        answer = self.migrate_shard(move["shard_id"], move["target_node"], move["source_node"],
                                                    strategy)
                    except ClusterError as exc:
                        if isinstance(exc, MaybeApplied) or not isinstance(exc, ApiError) or\
                                exc.status_code in (401, 403):
                            index -= 1  # not known to have started: it stays among those not started
                            if isinstance(exc, MaybeApplied):
                                move["error"] = "sent, its answer lost: it may or may not have started"
                            raise
                        elsewhere, now_on = self._shard_now(move) if exc.status_code == 409 else (None, None)
                        if elsewhere is not None and field(elsewhere, "target_node") == move["target_node"]:
                            move.update(migration_id=field(elsewhere, "migration_id"), _seen=CLOCK.now(), _last=None)
                            running.append(move)  # another operator's, going where this plan sends it: followed
                            notify("started", move)
                            continue
                        if elsewhere is None and now_on == move["target_node"]:  # another operator did it
                            self._ended(dict(move, progress=100.0), report, "completed", notify)
                            continue
                        if elsewhere is not None or now_on not in (None, move["source_node"]):  # theirs: left
                            report["stale"].append(dict(move, reason="another migration of it is running, to %s "
                                                        "(%s): left to it" % (
                                                            fmt_text(field(elsewhere, "target_node")),
                                                            fmt_text(field(elsewhere, "migration_id")))
                                                        if elsewhere is not None else "another operator moved it "
                                                        "to %s: left there" % fmt_text(now_on)))
                            continue
                        report["failed"].append(dict(move, error=str(exc)))
                        for node in nodes:
                            blocked.setdefault(node, "a move of %s FAILED there" % move["shard_id"])
                        notify("failed", report["failed"][-1])
                        continue
                    move.update(migration_id=field(answer, "migration_id"), _seen=CLOCK.now(), _last=None)
                    running.append(move)
                    for node in nodes:
                        busy[node] = busy.get(node, 0) + 1
                    notify("started", move)
            finally:
                pending[:] = kept + pending[index:]
            for move in pending:
                why = [b for b in (blocked.get(move["source_node"]), blocked.get(move["target_node"])) if b]
                if why and not stopped:
                    move["error"] = "not started: " + why[0]
            if not running and (broken or stopped or not pending or all(m.get("error") for m in pending)):
                return  # nothing left to follow, and nothing more may start
            if deadline is not None and CLOCK.now() >= deadline:
                return

    def _shard_now(self, move):
        # (its running migration or None, its primary) as the cluster says now; (None, None) if unread.
        try:
            shard = self.shard_status(move["shard_id"])
            primary = copies(shard)[0]
        except ClusterError:
            return None, None
        migration = field(shard, "migration")
        return (migration if field(migration, "status") in RUNNING_MIGRATION else None), primary

    def _poll_move(self, move, report, notify, stall_timeout):
        # Ask how a running move's migration goes. When it ended (completed, failed, stalled: no
        # progress for stall_timeout seconds, or unknown: the cluster forgot it), file it and return how.
        now = CLOCK.now()
        try:
            shard = self.shard_status(move["shard_id"])
        except ClusterError as exc:
            if not exc.retryable:
                raise
            shard = None  # a poll that failed is tried again at the next round; no progress seen
            if not self._lost:  # said at once, and again when the cluster answers
                self._lost = True
                notify("lost", dict(move, error=exc.message))
        if shard is not None and self._lost:
            self._lost = False
            notify("back", move)
        migration = field(shard, "migration")
        ours = isinstance(migration, dict) and field(migration, "migration_id") in (move.get("migration_id"), None)
        if shard is not None and not ours:
            if copies(shard)[0] == move["target_node"]:  # forgotten once done: the primary is there
                return self._ended(move, report, "completed", notify)
            if field(shard, "status") != "MIGRATING":  # still MIGRATING: the cluster says it goes on
                return self._ended(dict(move, error="the cluster no longer reports migration %s" % fmt_text(
                    move.get("migration_id"))), report, "unknown", notify)
        if ours:
            state = field(migration, "status")
            if state == "COMPLETED":
                return self._ended(dict(move, progress=100.0), report, "completed", notify)
            if state == "FAILED":
                return self._ended(dict(move, error=fmt_text(field(migration, "error")) or "FAILED"),
                                   report, "failed", notify)
            seen = (state, field(migration, "progress"), field(migration, "transferred_vectors"))
            if seen != move.get("_last"):
                move.update(_last=seen, _seen=now, progress=field(migration, "progress"))
                notify("poll", move)
        if now - move["_seen"] >= stall_timeout:
            at = number(move.get("progress"))
            return self._ended(dict(move, error="no progress for %.0f s (stuck at %s); it may still be running" % (
                now - move["_seen"], "an unknown point" if at is None else "%.1f%%" % at)), report, "stalled", notify)
        return None

    @staticmethod
    def _settled(report):
        # Return the report with the moves still running as a caller sees them (no private fields).
        report["running"][:] = [{k: v for k, v in m.items() if not k.startswith("_")} for m in report["running"]]
        return report

    def _ended(self, move, report, how, notify):
        report["running"][:] = [m for m in report["running"] if m["shard_id"] != move["shard_id"]]
        move = {k: v for k, v in move.items() if not k.startswith("_")}
        report[how].append(move)
        notify(how, move)
        return how

    def _compare_with_plan(self, plan):
        # (True, {}) when each node of the plan's `after` holds that many primaries now (a shard still in
        # flight counted where it goes, as the plan counted it).
        shards = self.list_shards()
        counts = _cluster_loads(self.list_nodes(), shards, self.in_flight(shards))[2]
        wanted = plan.get("after") or {}
        differences = {node: {"planned": count, "now": counts.get(node, 0)}
                       for node, count in sorted(wanted.items()) if counts.get(node, 0) != count}
        if plan.get("kind") == "drain" and counts.get(plan.get("node_id"), 0) and plan.get("node_id") not in wanted:
            differences[plan["node_id"]] = {"planned": 0, "now": counts[plan["node_id"]]}
        return not differences, differences

    # -- asking the cluster ----------------------------------------------------------

    def _get_object(self, endpoint, *ids):
        return expect_object(self._request(*ENDPOINTS[endpoint], *ids))

    def _may_change(self):
        if self._protected:
            raise ProtectedContext("context %r is protected: pass confirm=%r to ClusterCLI.from_context() to change "
                                   "its cluster; nothing was sent" % (self.context, self.context), param="confirm")

    def _request(self, method, path, *ids, params=None, body=None):
        # Send one request (a /cluster path under the API prefix), a change only when this client may
        # make it (its context's protection).
        if method != "GET":
            self._may_change()
        api, tried = path.startswith("/cluster"), self.api_prefix
        try:
            answer = self._transport.request(method, tried + path if api else path, *ids, params=params, body=body)
        except NotFound as exc:
            if not api or (exc.code or "NOT_FOUND") != "NOT_FOUND" or (self._prefix_seen and tried == self.api_prefix):
                self._prefix_seen = self._prefix_seen or api  # NODE_NOT_FOUND and the like: the API answered
                raise
            with self._prefix_lock:  # reads on several threads: one finds the prefix, says so once
                answer = self._not_under_prefix(method, path, ids, params, body, exc, tried)
        self._prefix_seen = self._prefix_seen or api
        return typed(answer, self.not_numbers)

    def _answers(self, path):
        try:
            self._transport.request("GET", path)
        except NotFound:
            return False
        except ClusterError as exc:
            return exc.exit_code != EXIT_UNREACHABLE  # it answered, if not with the status
        return True

    def _not_under_prefix(self, method, path, ids, params, body, exc, prefix):
        # Settle a 404 under `prefix` that came before the API prefix answered once: an unknown ID under
        # the right prefix, or the API served elsewhere. A read moves to JadeVectorDB's own prefix when
        # only that answers (unless the prefix was given), or to the one another thread moved to
        # meanwhile; a change is never sent to a guessed one: it is refused, saying which to use.
        if method == "GET" and prefix != self.api_prefix:
            return self._transport.request(method, self.api_prefix + path, *ids, params=params, body=body)
        if (method, path) != ("GET", "/cluster/status") and self._answers(self.api_prefix + "/cluster/status"):
            self._prefix_seen = True
            raise exc  # the API is there: the ID is not
        alternative = None
        if not self._prefix_given and self._answers(DIALECT_API_PREFIX + "/cluster/status"):
            alternative = DIALECT_API_PREFIX
            if method == "GET":
                self.api_prefix, self._prefix_seen = alternative, True
                if self.notice:
                    self.notice("the cluster serves its API under %s, not %s: using %s (api_prefix %s says so and "
                                "saves the extra request)" % (alternative, prefix, alternative, alternative))
                return self._transport.request(method, alternative + path, *ids, params=params, body=body)
        if alternative:
            exc.hint = "it is served under %s: run again with api_prefix %s (nothing was changed)" % (
                alternative, alternative)
        elif self._answers("/health"):
            exc.hint = "it answers /health, so this is a JadeVectorDB node that serves no cluster API under %s: " \
                       "set api_prefix to the path it uses (JadeVectorDB's own server: %s)" % (
                           prefix, DIALECT_API_PREFIX)
        else:
            exc.hint = "nothing answers /health there either: check that the address is a JadeVectorDB node"
        exc.message = "the cluster API is not served under %s (HTTP 404 for %s %s%s)" % (
            prefix, method, prefix, path.format(*ids))
        exc.param = "api_prefix"
        raise exc


# ==================================================================================================
# THE COMMAND LINE: flags and the environment in, results on stdout, everything else on stderr.
# ==================================================================================================


# --------------------------------------------------------------------------------------------------
# Writing: stdout and stderr, secrets kept out, --output
# --------------------------------------------------------------------------------------------------


# How results are printed: the --format choice, whether status words are coloured, --output, the
# terminal's width that tables fit (None when not printing to a terminal: full width), whether this is
# a --watch snapshot off a terminal, the columns (Fields) and header row --columns and --no-headers chose,
# and the cluster a change is sent to, as its answer names it (a context, or the address).
Output = tuple_class("Output", "format color file width snapshot columns headers sent_to",
                    defaults=(False, None, None, False, None, True, None))


DEFAULT_PROG = "cluster_cli.py"
PROG = DEFAULT_PROG  # the name the command was run as: jadevectordb-cluster when installed


# An option whose value is a secret, however mistyped: --api-key, --apikey, --api_key, --token... (a
# '-' and word characters, one of these words in them; tested without re, on every run's arguments)
SECRET_WORDS = words_in("key token secret passw auth")


class Spoken:
    # What this run's words are cleaned of, and how its hints name the command: set by main() and
    # run() for one run (main(argv) in-process starts afresh).

    def __init__(self):
        self.secrets, self.command = (), DEFAULT_PROG

    def keep_secret(self, *secrets):
        # Keep these secrets out of everything written, in every form a format may give them: as they are,
        # JSON-escaped (json, ndjson, --raw), with CSV's quotes doubled, TSV's backslashes, percent-encoded,
        # and in hex and base64 (a server may echo a header).
        forms = set()
        for secret in secrets:
            if secret:
                import json
                from urllib.parse import quote
                from binascii import b2a_base64  # built in: base64's module is not imported for this
                raw = secret.encode("utf-8", "surrogateescape")
                forms |= {secret, json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1],
                          secret.replace('"', '""'), secret.replace("\\", "\\\\"), quote(secret, safe=""),
                          raw.hex()}
                for shift in range(3):  # base64 wherever the key starts: what no padding byte touches
                    coded = b2a_base64(bytes(shift) + raw, newline=False).decode()[4 if shift else 0:-4]
                    forms |= {coded} if len(coded) > 5 else set()
        self.secrets = tuple(sorted(set(self.secrets) | forms, key=len, reverse=True))


SPOKEN = Spoken()


def secrets_in(argv):
    # Return the values of options that carry a secret, however their flag was spelled; and the environment's key.
    secrets = [os.environ.get(ENV_API_KEY)]
    for i, arg in enumerate(argv):
        name, equals, value = arg.partition("=")
        name = name[:-1] if name.endswith("\n") else name  # as re's $ would
        if name[:1] == "-" and name.replace("-", "a").replace("_", "a").isalnum() and any(
                word in name.casefold() for word in SECRET_WORDS) and not name.endswith("-env"):  # a variable's name
            secrets.append(value if equals else argv[i + 1] if i + 1 < len(argv) else None)
    return secrets


def redact(text):
    # Anything written, on stdout or stderr, without this run's secrets (the API key from the
    # command line, the environment or a context: each becomes as many '*') and, in text, without
    # any user:password@.
    if isinstance(text, bytes):
        for secret in SPOKEN.secrets:
            text = text.replace(secret.encode("utf-8", "surrogateescape"), b"*" * max(3, len(secret)))
        return text
    if "@" in text:  # a URL's user:password@ (a host's own is refused before it can be shown)
        text = re.sub(_USERINFO, r"\1***@", text)
    for secret in SPOKEN.secrets:
        if "..." in text and len(secret) > 4:  # a clipped cell ("...") must not end in the key's start
            for cut in range(len(secret) - 1, 3, -1):
                if secret[:cut] + "..." in text:
                    text = text.replace(secret[:cut] + "...", "*" * cut + "...")
        if secret not in text:
            continue
        mask = "*" * max(3, len(secret))  # as wide as the key, so a grid it was in stays aligned
        if len(secret) >= 4:
            text = text.replace(secret, mask)
        else:  # a short one only where it stands alone, or every 'a' in the message would go
            text = re.sub(r"(?<![\w-])%s(?![\w-])" % re.escape(secret), mask, text)
    return text


def terminal_text(message):
    # Control characters from input or a server escaped, not obeyed by the terminal.
    if message.isprintable():
        return message
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in message)


def pasteable(message):
    # Return a message whose hints ('check with cluster_cli.py nodes') name the command as it was run,
    # with the address flags it was given (--host, --url, --context...; never the key).
    return message.replace(DEFAULT_PROG + " ", SPOKEN.command + " ") if SPOKEN.command != DEFAULT_PROG else message


def err_write(text):
    # Write to stderr as it is (a progress line's \r too), secrets out; never fails the command.
    try:
        sys.stderr.write(redact(text))
        sys.stderr.flush()
    except (AttributeError, OSError, ValueError):
        pass


def say(prefix, message):
    # Write one line on stderr: a hint's command as the operator can paste it, secrets out, control
    # characters escaped. A closed or broken stderr loses the line, never the exit code.
    err_write("%s%s\n" % (prefix, terminal_text(pasteable(message))))


def print_error(message):
    say("error: ", message)


def warn(message):
    say("warning: ", message)


def note(message):
    say("", message)


def is_tty(stream):
    try:
        return bool(stream) and stream.isatty()
    except (AttributeError, ValueError, OSError):
        return False


def terminal_columns():
    # shutil.get_terminal_size().columns, without importing shutil (and bz2, lzma) on every run.
    try:
        columns = int(os.environ.get("COLUMNS", 0))
    except ValueError:
        columns = 0
    for stream in (sys.__stdout__, sys.__stderr__):  # stderr: a plan shown before its question
        if columns > 0:
            break
        try:
            columns = os.get_terminal_size(stream.fileno()).columns
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns or 80


def stderr_width():
    # Return the terminal's width when stderr is one: a plan shown before its question fits it.
    return terminal_columns() if is_tty(sys.stderr) else None


def write(text):
    # Write to stdout now (bytes as they are); a closed or full stdout is an OutputError
    # (a closed pipe stays BrokenPipeError).
    stream = sys.stdout
    if stream is None:  # started with stdout closed (>&-)
        raise OutputError("cannot write output: stdout is closed")
    if SPOKEN.secrets:
        text = redact(text)
    try:
        if isinstance(text, bytes):
            stream.flush()
            stream = getattr(stream, "buffer", None) or stream
            text = text if stream is not sys.stdout else text.decode("utf-8", "replace")
        try:
            stream.write(text)
        except UnicodeEncodeError:  # a lone surrogate from the server, or an encoding that lacks a character
            stream.write(text.encode(getattr(stream, "encoding", None) or "utf-8", "backslashreplace").decode(
                getattr(stream, "encoding", None) or "utf-8"))
        stream.flush()
    except BrokenPipeError:
        raise
    except (OSError, ValueError) as exc:
        raise OutputError("cannot write output: %s" % (getattr(exc, "strerror", None) or exc)) from None


def silence_stdout():
    # Point stdout at /dev/null, so what is still buffered goes nowhere at exit.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


def through_descriptors(path):
    # Return whether path is, or links through, /dev or /proc (/dev/stdout is /proc/self/fd/1): a stream
    # the process already has, written in place even when it is a regular file the shell opened.
    hop = os.path.abspath(path)
    for _ in range(40):
        if hop.startswith(("/dev/", "/proc/")):
            return True
        if not os.path.islink(hop):
            return False
        hop = os.path.join(os.path.dirname(hop), os.readlink(hop))
    return False


@contextmanager
def output_stream(path, stream, synced=False):
    """sys.stdout is `stream` within the block, flushed (and synced) at its end, and closed."""
    saved, sys.stdout = sys.stdout, stream
    try:
        yield
        stream.flush()
        if synced:
            os.fsync(stream.fileno())
    except OSError as exc:
        raise OutputError("cannot write %s: %s" % (shown(path), exc.strerror or exc)) from None
    finally:
        sys.stdout = saved
        try:
            stream.close()
        except OSError:
            pass


def with_removed(path):
    try:
        os.unlink(path)
    except OSError:
        pass


def check_links_are_ours(path):
    # Refuse a path that goes through a symlink another user could have planted: one its caller does not
    # own, in a folder someone else may write (the kernel's protected-symlinks rule, whatever the sysctl
    # says, and for every link on the way, not only in sticky folders). Root writing a report through a
    # link a user left in that user's own folder would replace whatever file the link names.
    import stat
    if os.name != "posix":
        return
    me = os.geteuid()
    pending = [part for part in os.path.abspath(path).split(os.sep) if part]
    done, hops = os.sep, 0
    while pending:
        part = pending.pop(0)
        here = os.path.join(done, part)
        try:
            info = os.lstat(here)
        except OSError:
            return  # not there (yet): nothing to follow
        if not stat.S_ISLNK(info.st_mode):
            done = here
            continue
        folder = os.stat(done)
        if info.st_uid != me and (folder.st_uid != me or folder.st_mode & 0o022):
            raise InvalidInput("--output %s goes through the link %s, which belongs to another user (uid %d) in a "
                               "folder another user may write: not followed, nothing was written" % (
                                   shown(path), here, info.st_uid))
        hops += 1
        if hops > 40:
            return  # a loop: opening it fails and says so
        target = os.readlink(here)
        pending = [p for p in target.split(os.sep) if p] + pending
        if target.startswith(os.sep):
            done = os.sep


@contextmanager
def written_to(path, mode=None):
    """stdout into FILE. A regular file (or none yet) is replaced atomically: a temporary file is
    created beside it, exclusively and under an unpredictable name (so never through a planted
    symlink), written, synced, given the file's mode (and owner, as root), then renamed over it; a
    reader never sees half of it, and on any failure FILE is left as it was. A symlink is followed
    to the file it names. Anything else, a device, a FIFO or /dev/stdout, is written in place.
    `mode`, if given, is the new file's mode instead."""
    if path is None:
        yield
        return
    import stat
    try:
        info = os.stat(path)
    except FileNotFoundError:
        info = None
    except OSError as exc:
        raise OutputError("cannot write %s: %s" % (shown(path), exc.strerror or exc)) from None
    if info is not None and stat.S_ISDIR(info.st_mode):
        raise OutputError("cannot write %s: it is a folder" % shown(path))
    check_links_are_ours(path)
    import tempfile
    target = os.path.realpath(path)
    folder, name = os.path.split(target)
    temporary = None
    try:
        if info is not None and not stat.S_ISREG(info.st_mode) or through_descriptors(path):
            stream = open(path, "w", encoding="utf-8")  # noqa: SIM115  (closed by output_stream), as > does
        else:
            descriptor, temporary = tempfile.mkstemp(prefix=".%s." % name, suffix=".tmp", dir=folder)
            stream = os.fdopen(descriptor, "w", encoding="utf-8")
            if info is not None:
                os.fchmod(descriptor, stat.S_IMODE(info.st_mode))
                if hasattr(os, "geteuid") and os.geteuid() == 0:
                    os.fchown(descriptor, info.st_uid, info.st_gid)
            else:
                mask = os.umask(0)
                os.umask(mask)
                os.fchmod(descriptor, 0o666 & ~mask)  # what the shell's > would have made
            if mode is not None:
                os.fchmod(descriptor, mode)
        with output_stream(path, stream, synced=temporary is not None):
            yield
        if temporary is not None:
            os.replace(temporary, target)
    except BaseException as exc:
        if temporary is not None:
            with_removed(temporary)
        if isinstance(exc, OSError):
            raise OutputError("cannot write %s: %s" % (shown(path), exc.strerror or exc)) from None
        raise


# --------------------------------------------------------------------------------------------------
# Formatting values
# --------------------------------------------------------------------------------------------------


def fmt_count(value):
    if type(value) is int and -10 ** 15 < value < 10 ** 15:
        return f"{value:,}"  # the common case, first
    n = number(value)
    if n is None:
        return fmt_text(value)
    if isinstance(n, float):
        n = int(n) if n.is_integer() else n
    return clip(f"{n:,}" if isinstance(n, int) else f"{n:,.1f}")


def _fmt_number(value, template):
    n = as_float(value)
    return fmt_text(value) if n is None else clip(template % n)


def fmt_percent(value):
    return _fmt_number(value, "%.1f%%")


def fmt_ms(value):
    return _fmt_number(value, "%.1f ms")


def fmt_rate(value):
    n = as_float(value)
    return fmt_text(value) if n is None else clip(f"{n:,.1f}/s")


def fmt_duration(value):
    n = as_float(value)
    if n is None:
        return fmt_text(value)
    total = int(n)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, total = divmod(rest, 60)
    if days:
        return clip("%dd %dh %dm" % (days, hours, minutes))
    if hours:
        return "%dh %dm" % (hours, minutes)
    return "%dm %ds" % (minutes, total) if minutes else "%ds" % total


def fmt_names(value):
    # Return a list of IDs, or 'none' when the server said there are none.
    return "none" if value == [] else fmt_text(value)


def fmt_yes_no(value):
    return "" if value is None else ("yes" if value else "no")


def counted(word):
    # Return a formatter of counts as words: counted("shard")(1) is '1 shard', (8) is '8 shards'.
    def fmt(value):
        return "%s %s%s" % (fmt_count(value), word, "" if number(value) == 1 else "s")
    return fmt


def words(count, word):
    return counted(word)(count)


def words_are(count, word):
    # '1 shard is', '3 shards are'.
    return words(count, word) + (" is" if count == 1 else " are")


fmt_shards = counted("shard")


def fmt_aside(value):
    # ' (text)' after a sentence, or nothing.
    text = fmt_text(value)
    return " (%s)" % text if text else ""


COLOURS = {"32": words_in("HEALTHY PASS COMPLETED OK GREEN"),
           "33": words_in("DEGRADED WARN JOINING LEAVING MIGRATING UNDER_REPLICATED PENDING IN_PROGRESS YELLOW"),
           "31": words_in("UNHEALTHY UNREACHABLE FAILED FAIL OFFLINE ERROR RED")}
COLOUR_OF = {word: code for code, words in COLOURS.items() for word in words}


def paint(text):
    code = COLOUR_OF.get(text.upper())
    return "\x1b[%sm%s\x1b[0m" % (code, text) if code else text


# --------------------------------------------------------------------------------------------------
# Views: what each command's result looks like, one record each
# --------------------------------------------------------------------------------------------------


# -- what each command's result looks like: one View record per result -----------------------

# One field of a result: its label (a row's or a column's), the server's field name, how to
# show its value, the least width of its column, and whether it is a status word (coloured).
Field = tuple_class("Field", "label key fmt width status", defaults=(fmt_text, 0, False))


# A part of a table below the key/value block: a titled grid ("grid", fields as columns) or
# key/value rows ("rows", shown even when empty), of what `source` picks from the result;
# "record" is a one-row grid followed by those of the `details` rows that have a value.
# `empty` is shown for an empty grid or record (None: the section is left out).
Section = tuple_class("Section", "title kind fields source details empty", defaults=((), "none"))


# Compact lines of a part of the result: one per item of what `source` picks, fields joined by ' | '.
Lines = tuple_class("Lines", "source fields")


# Everything any format needs to show one kind of result:
#   columns   a list result: its grid columns, and compact's one line per item
#   title     the key/value block's title ({field} placeholders, as in compact templates)
#   rows      the key/value block's rows
#   sections  what the table shows below the block
#   sentence  a one-line table result instead of a block (the answers to changes)
#   compact   its lines: a template ("{status:status} | {total_nodes:count} nodes") or Lines
#   prepare   derives fields the formats show (a checks summary, a plan's verdict)
#   samples   its Prometheus samples (Sample records)
#   headers   whether grids and CSV/TSV start with their header row (--no-headers)
#   items     a plan's or report's list, which --columns and --sort-by turn it into: (its source, the list
#             view it is shown with); a key/value result is one row
#   fields    the contract's fields of the result, in its order: CSV and TSV columns (a field the
#             server left out is an empty cell, one it added comes after them), what --columns knows
View = tuple_class("View", "columns title rows sections sentence compact prepare samples headers items fields",
                  defaults=((), "", (), (), "", (), None, (), True, None, ()))


# A Prometheus metric from a result: its name and help, the field its value is (or a function of
# the row), the labels as (label, field) pairs, and the rows (a function of the result; default: the
# result's items, or the result itself). A row without a value gives no sample: nothing is written as 0.
Sample = tuple_class("Sample", "name help value labels rows", defaults=((), None))


def cell(obj, spec, color=False):
    text = spec.fmt(field(obj, spec.key))
    return paint(text) if color and spec.status else text


def cells(rows, columns, color=False, missing=""):
    # Return every row's cells (as cell() makes them), the column specs unpacked once; a field the
    # server did not send is `missing` (a grid's '-').
    def or_missing(fmt):
        return (lambda value: missing if value is None else fmt(value)) if missing else fmt
    specs = [(spec.key, or_missing(spec.fmt), color and spec.status) for spec in columns]
    return [[paint(fmt(field(row, key))) if status else fmt(field(row, key)) for key, fmt, status in specs]
            for row in rows]


def lookup(obj, path):
    # Return a field by a dotted path: 'migration.status'.
    for name in path.split("."):
        obj = field(obj, name)
    return obj


# The formats of values, by kind (FIELD_KINDS) and in compact templates: {key} is text, {key:count} a
# count, {key:status} a coloured status word...
TEMPLATE_FORMATS = {"": fmt_text, "count": fmt_count, "percent": fmt_percent, "ms": fmt_ms, "rate": fmt_rate,
                    "bytes": fmt_bytes, "duration": fmt_duration, "names": fmt_names, "yes_no": fmt_yes_no,
                    "shards": fmt_shards, "aside": fmt_aside, "nodes": counted("node"), "vectors": counted("vector"),
                    "errors": counted("error"), "moves": counted("move"),
                    "under_replicated": counted("under-replicated shard"), "status": fmt_text}


def labelled(label, key, width=0, fmt=None):
    # Return the field `key` under `label`, shown as its kind is (FIELD_KINDS) unless `fmt` says otherwise.
    kind = FIELD_KINDS.get(key, "")
    return Field(label, key, fmt or TEMPLATE_FORMATS[kind], width, kind == "status")


def title_of(key):
    # A field's title: its words capitalized, abbreviations in capitals (node_id: Node ID).
    return " ".join(word.upper() if word in ("id", "cpu", "ms", "api", "url", "pid", "http") else word.capitalize()
                    for word in key.split("_"))


def shown_as(spec):
    # Fields from 'key, key:Label, ...': each under its label, else its key's title.
    return tuple(labelled(label or title_of(key), key) for key, _, label in
                 (entry.partition(":") for entry in spec.split(", ")))


_PLACEHOLDER = r"\{([\w.]+)(?::(\w+))?\}"
_OPTIONAL = r"\[([^\[\]]*)\]"


def fill(template, obj, color=False):
    # Return a template's {placeholders} filled from obj; a [bracketed part] only when one of its
    # fields has a value.
    def value(match):
        name, kind = match.group(1), match.group(2) or ""
        text = TEMPLATE_FORMATS[kind](lookup(obj, name))
        return paint(text) if color and kind == "status" else text

    def optional(match):
        part = match.group(1)
        present = any(lookup(obj, name) not in (None, "", [], {}) for name, _ in re.findall(_PLACEHOLDER, part))
        return re.sub(_PLACEHOLDER, value, part) if present else ""

    return re.sub(_PLACEHOLDER, value, re.sub(_OPTIONAL, optional, template))


ELLIPSIS = "\u2026"


_ANSI = r"\x1b\[[0-9;]*m"


def shown_len(text, color=False):
    # Return how many columns text takes on a terminal: a wide character (CJK) two, a combining mark or
    # a zero-width one none, its colour codes none.
    if color:
        text = re.sub(_ANSI, "", text)
    if text.isascii():
        return len(text)
    import unicodedata
    return sum(0 if unicodedata.combining(c) or unicodedata.category(c) in ("Mn", "Me", "Cf") else
               2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def clipped(text, width, color=False):
    # Return text cut to `width` columns, its last one an ellipsis, when it is wider.
    if shown_len(text, color) <= width:
        return text
    if text.isascii() and not color:
        return text[:width - 1] + ELLIPSIS
    while shown_len(text, color) > width - 1:
        text = text[:-1]
    return text + ELLIPSIS


CLIPPABLE = (fmt_text, fmt_names)  # text columns; numbers and status words are never clipped


def fit(columns, least, content, width):
    # Return (least widths, widths) of a grid fitted to `width`, from its columns' least and content
    # widths: first the padding of the view's least widths goes, then the widest text column loses a
    # character at a time, down to its header's width (or 8), until the grid fits or no column can give
    # more. Numbers, status words and names (ID_FIELDS) stay whole.
    widths = [max(most, content[i]) for i, most in enumerate(least)]
    excess = sum(widths) + 3 * len(widths) + 1 - width  # "│ " before each cell, " │" after the last
    if excess <= 0:
        return least, widths
    text = [spec.fmt in CLIPPABLE and not spec.status and spec.key not in ID_FIELDS for spec in columns]
    floors = [min(content[i], max(len(spec.label), 8)) if text[i] else content[i] for i, spec in enumerate(columns)]
    while excess > 0:
        i = max(range(len(widths)), key=lambda i: (widths[i] > content[i], widths[i] > floors[i], widths[i]))
        if widths[i] <= floors[i]:
            break
        widths[i] -= 1
        excess -= 1
    return [min(most, widths[i]) for i, most in enumerate(least)], widths


BATCH = 1000  # items a list is written in, a batch at a time


def write_grid(columns, rows, out, color=False, width=None, headers=True, end="\n"):
    # Write a box-drawn grid of `columns` (Fields), one row per item, every column as wide as its widest
    # cell in terminal columns (wide characters, combining marks and colour codes counted as shown), at
    # most `width` wide if it can be (see fit()). Two passes over the rows, the first measuring, the
    # second writing a batch at a time: cells are formatted twice rather than all held, so whatever the
    # server sent, a grid costs the memory of a batch; the same at every size.
    least = [max(len(spec.label), spec.width) for spec in columns]
    content = [len(spec.label) for spec in columns]
    for start in range(0, len(rows), BATCH):  # a column at a time: measured in C, not a cell at a time
        for i, texts in enumerate(zip(*cells(rows[start:start + BATCH], columns, color, missing="-"))):
            texts = list(map(str.strip, texts))
            plain = not color and "".join(texts).isascii()
            content[i] = max(content[i], max(map(len, texts)) if plain else max(shown_len(t, color) for t in texts))
    least, widths = fit(columns, least, content, width) if width else (least, content)
    cut = [widths[i] < content[i] for i in range(len(columns))]  # clipped with '…' to fit the terminal
    widths = [widths[i] if cut[i] else max(least[i], content[i]) for i in range(len(columns))]

    def rule(left, middle, right):
        return left + middle.join("─" * (size + 2) for size in widths) + right

    def row(line):
        texts = [clipped(text, widths[i], color) if cut[i] else text for i, text in enumerate(map(str.strip, line))]
        if not color and "".join(texts).isascii():
            return "│ " + " │ ".join(map(str.ljust, texts, widths)) + " │\n"
        return "│ " + " │ ".join(text + " " * (widths[i] - shown_len(text, color))
                                 for i, text in enumerate(texts)) + " │\n"

    out(rule("┌", "┬", "┐") + "\n" + (row([spec.label for spec in columns]) + rule("├", "┼", "┤") + "\n"
                                        if headers else ""))
    for start in range(0, len(rows), BATCH):
        out("".join(map(row, cells(rows[start:start + BATCH], columns, color, missing="-"))))
    out(rule("└", "┴", "┘") + end)


def render_grid(columns, rows, color=False, width=None):
    # Return the grid write_grid() writes, as text without its last newline.
    parts = []
    write_grid(columns, rows, parts.append, color, width, end="")
    return "".join(parts)


def render_rows(rows, obj, color=False):
    # 'Label: value' lines, for the fields the server sent (no bare 'Label:' for one it did not).
    return "\n".join(("%s: %s" % (spec.label, cell(obj, spec, color))).rstrip() for spec in rows
                     if field(obj, spec.key) is not None)


def render_section(spec, obj, color=False, width=None):
    # Return a sub-heading and its body, after a blank line.
    data = spec.source(obj)
    if spec.kind == "rows":
        body = render_rows(spec.fields, as_dict(data), color) or spec.empty or ""
        if not body:
            return ""
    elif not data:
        if spec.empty is None:
            return ""
        body = spec.empty
    elif spec.kind == "grid":
        body = render_grid(spec.fields, as_list(data), color, width)
    else:  # "record"
        details = [row for row in spec.details if field(data, row.key) not in (None, "")]
        body = "\n".join([render_grid(spec.fields, [data], color, width)] +
                         ([render_rows(details, data, color)] if details else []))
    return "\n\n%s\n%s\n%s" % (spec.title, "-" * len(spec.title), body)


def compact_lines(rows, columns, color=False):
    # Return one line per row, its cells joined by ' | '.
    return list(map(" | ".join, cells(rows, columns, color)))


def picked(*path):
    # Return a section's or Lines' source: the field at that path of the result.
    return lambda obj: lookup(obj, ".".join(path))


def list_at(*path):
    return lambda obj: as_list(lookup(obj, ".".join(path)))


def itself(obj):
    return obj


STATUS = labelled("Status", "status")
NODE_ID, SHARD_ID = labelled("Node ID", "node_id"), labelled("Shard ID", "shard_id")
USAGE_ROWS = tuple(labelled(label + " Usage", key) for label, key in USAGE_FIELDS)
USAGE_COLUMNS = tuple(labelled(label, key) for label, key in USAGE_FIELDS)
# What a server adds (its cluster's name) comes after the specification's rows, which stay where it shows them.
STATUS_ROWS = shown_as("master_node, total_nodes, active_nodes, total_shards, status, replication_factor, "
                       "cluster_name:Cluster")


# Least widths reproduce the specification's grids exactly.
NODE_COLUMNS = (labelled("Node ID", "node_id", 16), labelled("Role", "role", 7), labelled("Address", "address", 18),
                labelled("Status", "status", 8), labelled("Shards", "shard_count", 8))


SHARD_COLUMNS = (labelled("Shard ID", "shard_id", 8), labelled("Primary Node", "primary_node", 15),
                 labelled("Replicas", "replicas", 11), labelled("Vector Count", "vector_count", 14),
                 labelled("Status", "status", 8))
NODE_ROWS = shown_as("node_id, role, address, status, shard_count:Shards") + USAGE_ROWS + shown_as(
    "uptime_seconds:Uptime, last_heartbeat")
CHECK_COLUMNS = shown_as("name:Check, status, detail")
SHARD_ROWS = shown_as("shard_id, database_id:Database, primary_node, replica_nodes, replicas, vector_count, "
                      "size_bytes:Size, status")
MIGRATION_ROWS = shown_as("migration_id, shard_id, strategy, source_node:From, target_node:To, status, phase, "
                          "progress, transferred_vectors:Transferred, total_vectors, started_at:Started, "
                          "finished_at:Finished, error")
MIGRATION_COLUMNS = shown_as("migration_id, strategy, source_node:From, target_node:To, status, progress, vectors")
MIGRATION_DETAIL_ROWS = shown_as("phase, started_at:Started, finished_at:Finished, error")
METRIC_ROWS = USAGE_ROWS + shown_as("queries_per_second:Queries, avg_query_latency_ms:Avg Query Latency, "
                                    "p99_query_latency_ms:P99 Query Latency, total_vectors")
NODE_METRIC_COLUMNS = (NODE_ID,) + USAGE_COLUMNS
DIAG_NODE_COLUMNS = shown_as("node_id, role, status") + USAGE_COLUMNS + shown_as("checks_summary:Checks")
TOPOLOGY_ROWS = shown_as("master_node, nodes")
DISTRIBUTION_COLUMNS = shown_as("node_id, shard_count:Shards")
REPLICATION_ROWS = shown_as("replication_factor, under_replicated_shards:Under-replicated Shards")
ERROR_COLUMNS = shown_as("timestamp:Time, node_id:Node, severity, message")
PLAN_CHECK_COLUMNS = shown_as("name:Check, result, detail")
MIGRATION_PLAN_ROWS = shown_as("shard_id, source_node:From, target_node:To, strategy, vectors_to_move, "
                               "bytes_to_move, would_succeed")
REMOVAL_PLAN_ROWS = shown_as("node_id, primary_shards, replica_shards, shards_to_redistribute, "
                             "under_replicated_after:Under-replicated After, would_succeed")
HEALTH_ROWS = shown_as("status, version")


def checks_summary(checks):
    # '4 PASS' or 'storage WARN, heartbeat FAIL': what an operator needs from a node's checks.
    checks = [c for c in as_list(checks) if isinstance(c, dict)]
    failing = ["%s %s" % (fmt_text(field(c, "name")), fmt_text(field(c, "status")))
               for c in checks if field(c, "status") not in ("PASS", None)]
    return ", ".join(failing) if failing else ("%d PASS" % len(checks) if checks else "")


def with_checks_summary(node):
    return dict(as_dict(node), checks_summary=checks_summary(field(node, "checks")))


def diagnostics_summary(data):
    # Return the diagnostics with what the formats show of them: nodes with their checks, counts.
    data = as_dict(data)
    nodes = list(map(with_checks_summary, as_list(field(data, "nodes"))))
    return dict(data, nodes=nodes, node_total=len(nodes), error_total=len(as_list(field(data, "errors"))),
                distribution=[{"node_id": k, "shard_count": v}
                              for k, v in as_dict(field(data, "shard_distribution")).items()],
                under_replicated_total=len(as_list(lookup(data, "replication.under_replicated_shards"))))


def metrics_per_node(data):
    per_node = field(data, "nodes")
    return [dict(as_dict(v), node_id=k) for k, v in per_node.items()] if isinstance(per_node, dict) else []


def is_healthy(row):
    # 1 for HEALTHY, 0 for any other status, None (no sample) when none was sent.
    status = field(row, "status")
    return None if status is None else 1.0 if status == "HEALTHY" else 0.0


def cluster_status_rows(data):
    # Return one row per status the cluster can be in, 1 for the current one (a Prometheus enum).
    current = field(data, "status")
    return [] if current is None else [{"status": status, "up": 1.0 if status == current else 0.0}
                                       for status in CLUSTER_STATUSES]


def scaled(key, divisor):
    # Return a sample's value: the field in the base unit Prometheus names use (a percentage as a
    # ratio of 1, milliseconds as seconds); None, so no sample, when the field has no number.
    def value(row):
        n = as_float(field(row, key))
        return None if n is None else n / divisor
    return value


# Each series comes from one command only (node_exporter rejects a name and labels collected twice):
# the nodes' usage from metrics, their state and shard counts from nodes. Names in base units.
NODE_USAGE_SAMPLES = tuple(Sample("jadevectordb_node_%s_ratio" % key, "The node's %s use, 0 to 1" % label,
                                  scaled(key, 100), (("node_id", "node_id"),), metrics_per_node)
                           for label, key in USAGE_FIELDS)
CLUSTER_SAMPLES = tuple(Sample("jadevectordb_cluster_%s_ratio" % key, "The cluster's %s use, 0 to 1" % label,
                               scaled(key, 100)) for label, key in USAGE_FIELDS) + (
    Sample("jadevectordb_cluster_queries_per_second", "Queries answered per second", "queries_per_second"),
    Sample("jadevectordb_cluster_query_latency_avg_seconds", "Average query latency",
           scaled("avg_query_latency_ms", 1000)),
    Sample("jadevectordb_cluster_query_latency_p99_seconds", "99th percentile query latency",
           scaled("p99_query_latency_ms", 1000)),
    Sample("jadevectordb_cluster_vectors", "Vectors stored", "total_vectors"))
# Written with every command's samples, labelled by the command so that files of several commands
# never repeat a series: whether the cluster answered, and when it last did.
UP_METRIC = "jadevectordb_cluster_up"
LAST_SUCCESS_METRIC = "jadevectordb_cli_last_success_timestamp_seconds"


def migration_record(data):
    # Return the shard's latest migration, with its vectors as 'moved/total'.
    migration = field(data, "migration")
    if not migration:
        return None
    return dict(as_dict(migration), vectors="%s/%s" % (
        fmt_count(field(migration, "transferred_vectors")), fmt_count(field(migration, "total_vectors"))))


def plan_summary(plan):
    # Return a dry run's plan with its verdict, its checks' results and the reasons it would fail.
    plan = as_dict(plan)
    checks = as_list(field(plan, "checks"))
    return dict(plan, verdict="would succeed" if field(plan, "would_succeed") else "would fail",
                check_results=[{"name": field(c, "name"),
                                "result": "PASS" if field(c, "passed") else "FAIL" if field(c, "blocking") else "WARN",
                                "detail": field(c, "detail")} for c in checks],
                reasons="".join(" | " + ("warning: " if not field(c, "blocking") else "") + fmt_text(field(c, "detail"))
                                for c in checks if not field(c, "passed")))


PLAN_CHECKS = Section("Checks", "grid", PLAN_CHECK_COLUMNS, picked("check_results"))
# A migration's fields, in the contract's order: its answer when started, and when read.
MIGRATION_FIELDS = words_in("migration_id shard_id strategy source_node target_node status progress "
                            "transferred_vectors total_vectors started_at finished_at error")
MIGRATION_LINE = "{migration_id} | {shard_id} | {source_node} -> {target_node} | {strategy} | {status:status} | "\
                 "{progress:percent}"
VIEWS = {
    "status": View(
        fields=words_in("cluster_name master_node total_nodes active_nodes total_shards status replication_factor"),
        title="Cluster Status", rows=STATUS_ROWS,
        compact=("{status:status} | {total_nodes:nodes} | {total_shards:shards} | master: {master_node}"
                 "[ | cluster: {cluster_name}]",),
        samples=(Sample("jadevectordb_cluster_nodes", "Nodes in the cluster", "total_nodes"),
                 Sample("jadevectordb_cluster_active_nodes", "Nodes HEALTHY or DEGRADED", "active_nodes"),
                 Sample("jadevectordb_cluster_shards", "Shards in the cluster", "total_shards"),
                 Sample("jadevectordb_cluster_replication_factor", "Copies kept of each shard",
                        "replication_factor"),
                 Sample("jadevectordb_cluster_status", "1 for the cluster's status, 0 for the others",
                        lambda row: row["up"], (("status", "status"),), cluster_status_rows))),
    "health": View(
        fields=("status", "version"),
        title="Health", rows=HEALTH_ROWS, compact=("{status:status}[ | {version}]",)),
    "nodes": View(
        fields=words_in("node_id role address status shard_count cpu_usage memory_usage disk_usage uptime_seconds "
                        "last_heartbeat"),
        columns=NODE_COLUMNS, samples=(
        Sample("jadevectordb_node_up", "1 when the node is HEALTHY", is_healthy,
               (("node_id", "node_id"), ("role", "role"))),
        Sample("jadevectordb_node_shards", "Primary shards on the node (as the cluster counts them)", "shard_count",
               (("node_id", "node_id"),)))),
    "shards": View(
        fields=words_in("shard_id database_id primary_node replica_nodes replicas vector_count size_bytes status"),
        columns=SHARD_COLUMNS, samples=(
        Sample("jadevectordb_shard_vectors", "Vectors in the shard", "vector_count",
               (("shard_id", "shard_id"), ("primary_node", "primary_node"))),
        Sample("jadevectordb_shard_replicas", "Copies of the shard, the primary included", "replicas",
               (("shard_id", "shard_id"),)),
        Sample("jadevectordb_shard_healthy", "1 when the shard is HEALTHY", is_healthy, (("shard_id", "shard_id"),)),
        Sample("jadevectordb_shard_size_bytes", "The shard's size on disk", "size_bytes",
               (("shard_id", "shard_id"),)))),
    "node-health": View(
        fields=words_in("node_id role address status shard_count cpu_usage memory_usage disk_usage uptime_seconds "
                        "last_heartbeat checks"),
        title="Node Health: {node_id}", rows=NODE_ROWS,
        sections=(Section("Checks", "grid", CHECK_COLUMNS, list_at("checks")),),
        compact=("{node_id} | {status:status} | cpu {cpu_usage:percent} | mem {memory_usage:percent} | "
                 "disk {disk_usage:percent} | checks: {checks_summary}",),
        prepare=with_checks_summary),
    "shard-status": View(
        fields=words_in("shard_id database_id primary_node replica_nodes replicas vector_count size_bytes status "
                        "migration"),
        title="Shard Status: {shard_id}", rows=SHARD_ROWS,
        sections=(Section("Migration", "record", MIGRATION_COLUMNS, migration_record, MIGRATION_DETAIL_ROWS),),
        compact=("{shard_id} | {status:status} | primary: {primary_node} | {vector_count:vectors}"
                 "[ | migration: {migration.migration_id} {migration.status:status} {migration.progress:percent}]",)),
    "metrics": View(
        fields=words_in("cpu_usage memory_usage disk_usage queries_per_second avg_query_latency_ms "
                        "p99_query_latency_ms total_vectors nodes"),
        title="Cluster Metrics", rows=METRIC_ROWS,
        sections=(Section("Nodes", "grid", NODE_METRIC_COLUMNS, metrics_per_node, empty=None),),
        compact=("cpu {cpu_usage:percent} | mem {memory_usage:percent} | disk {disk_usage:percent} | "
                 "queries {queries_per_second:rate} | p99 {p99_query_latency_ms:ms} | {total_vectors:vectors}",),
        samples=CLUSTER_SAMPLES + NODE_USAGE_SAMPLES),
    "diagnostics": View(
        fields=words_in("generated_at topology nodes shard_distribution replication performance errors"),
        title="Cluster Diagnostics", rows=(labelled("Generated At", "generated_at"),),
        sections=(Section("Topology", "rows", TOPOLOGY_ROWS, picked("topology")),
                  Section("Node Health", "grid", DIAG_NODE_COLUMNS, picked("nodes")),
                  Section("Shard Distribution", "grid", DISTRIBUTION_COLUMNS, picked("distribution")),
                  Section("Replication", "rows", REPLICATION_ROWS, picked("replication")),
                  Section("Performance", "rows", METRIC_ROWS, picked("performance")),
                  Section("Errors", "grid", ERROR_COLUMNS, list_at("errors"))),
        compact=("master: {topology.master_node} | {node_total:nodes} | "
                 "{under_replicated_total:under_replicated} | {error_total:errors}",
                 Lines(picked("nodes"), DIAG_NODE_COLUMNS), Lines(list_at("errors"), ERROR_COLUMNS)),
        prepare=diagnostics_summary),
    "node-added": View(
        fields=words_in("node_id address status message"),
        sentence="Node {node_id} ({address}) added[ to {sent_to}]: {status:status}{message:aside}",
        compact=("{node_id} | {status:status} | {address}[ | {sent_to}]",)),
    "node-removed": View(
        fields=words_in("node_id removed shards_redistributed message"),
        sentence="Node {node_id} removed[ from {sent_to}]: {shards_redistributed:shards} "
                 "redistributed",
        compact=("{node_id} | removed | {shards_redistributed:shards} redistributed[ | {sent_to}]",)),
    "migration-started": View(fields=MIGRATION_FIELDS,
        sentence="Migration {migration_id} started[ on {sent_to}]: {shard_id} {source_node} -> "
                                       "{target_node} ({strategy})", compact=(MIGRATION_LINE + "[ | {sent_to}]",)),
    "migration": View(fields=MIGRATION_FIELDS,
        title="Migration {migration_id}[ on {sent_to}]", rows=MIGRATION_ROWS,
                      compact=(MIGRATION_LINE + "[ | {sent_to}]",)),
    "migration-plan": View(
        title="Dry run: migrate {shard_id}", rows=MIGRATION_PLAN_ROWS, sections=(PLAN_CHECKS,),
        compact=("{verdict} | migrate {shard_id} | {source_node} -> {target_node} | {vectors_to_move:vectors}"
                 " | {bytes_to_move:bytes}{reasons}",), prepare=plan_summary),
    "removal-plan": View(
        title="Dry run: remove {node_id}", rows=REMOVAL_PLAN_ROWS, sections=(PLAN_CHECKS,),
        compact=("{verdict} | remove {node_id} | {shards_to_redistribute:shards} to redistribute | "
                 "under-replicated after: {under_replicated_after:names}{reasons}",), prepare=plan_summary),
}


def move_plan_summary(plan):
    # Return a plan with its title, node rows and spreads (in vectors when it balances vectors), as the
    # formats show it.
    plan = as_dict(plan)
    by_vectors = field(plan, "balance_by") == "vectors"
    before, after = as_dict(field(plan, "before")), as_dict(field(plan, "after"))
    weighed = (as_dict(field(plan, "vectors_before")), as_dict(field(plan, "vectors_after"))) if by_vectors else \
        (before, after)
    drained = field(plan, "node_id") if field(plan, "kind") == "drain" else None
    out = {field(n, "node_id") for n in as_list(field(plan, "left_out"))}  # only HEALTHY nodes hold primaries
    kept = [n for n in after if n != drained and n not in out]
    spread = lambda counts: (max(counts) - min(counts)) if counts else 0  # noqa: E731
    title = field(plan, "title") or ("Drain plan: %s" % fmt_text(drained) if drained else
             "Rebalance plan (balance by %s)" % (fmt_text(field(plan, "balance_by")) or "shards"))
    nodes = [{"node_id": n, "before": before.get(n), "after": after.get(n)} for n in sorted(after)]
    vector_nodes = [{"node_id": n, "before": weighed[0].get(n), "after": weighed[1].get(n)} for n in sorted(after)]
    return dict(plan, title=title, move_total=len(as_list(field(plan, "moves"))), nodes=nodes,
                vector_nodes=vector_nodes if by_vectors else [],
                spread_before=spread([finite(weighed[0].get(n)) for n in kept]),
                spread_after=spread([finite(weighed[1].get(n)) for n in kept]),
                spread_unit="vectors" if by_vectors else None)


MOVE_RESULTS = (("completed", "COMPLETED"), ("failed", "FAILED"), ("stalled", "STALLED"), ("unknown", "UNKNOWN"),
                ("skipped", "SKIPPED"), ("running", "RUNNING"), ("not_started", "NOT STARTED"), ("stale", "STALE"))


def move_report_summary(report):
    # Return a report with one row per move and its result.
    report = as_dict(report)
    rows = []
    for key, result in MOVE_RESULTS:
        rows += [dict(as_dict(move), result=result) for move in as_list(field(report, key))]
    title = ("Drain of %s" % fmt_text(field(report, "node_id")) if field(report, "kind") == "drain" else
             "Rebalance")
    return dict(report, moves=rows, title=title, **{key + "_total": len(as_list(field(report, key)))
                                      for key, _ in MOVE_RESULTS})


MOVE_COLUMNS = shown_as("shard_id, source_node:From, target_node:To, vector_count:Vectors")
MOVE_RESULT_COLUMNS = shown_as("shard_id, source_node:From, target_node:To, migration_id:Migration, result, "
                               "error:Detail")
PLAN_NODE_COLUMNS = (NODE_ID, labelled("Before", "before", fmt=fmt_count),
                     labelled("After", "after", fmt=fmt_count))
def headed(word):
    # A compact line's first field, said as what the line is about ("skipped: shard-03").
    return lambda value: "%s: %s" % (word, fmt_text(value))


VIEWS["move-plan"] = View(
    title="{title}", rows=tuple(labelled(label, key, fmt=fmt_count) for label, key in (
        ("Moves", "move_total"), ("Spread Before", "spread_before"), ("Spread After", "spread_after"))) + (
        labelled("Spread In", "spread_unit"), labelled("Replicas Held", "replica_shards", fmt=fmt_names)),
    sections=(Section("Moves", "grid", MOVE_COLUMNS, list_at("moves")),
              Section("Nodes", "grid", PLAN_NODE_COLUMNS, list_at("nodes")),
              Section("Vectors per node", "grid", PLAN_NODE_COLUMNS, list_at("vector_nodes"), empty=None),
              Section("In Flight (counted where they go)", "grid", MOVE_COLUMNS[:3], list_at("in_flight"), empty=None),
              Section("Skipped", "grid", shown_as("shard_id, reason"),
                      list_at("skipped"), empty=None),
              Section("Left Out (only HEALTHY nodes take primaries)", "grid", (
                  NODE_ID, STATUS,
                  labelled("Primaries", "primaries", fmt=fmt_count), labelled("Reason", "reason")),
                  list_at("left_out"), empty=None),
              Section("Blocked (copies in the way of an even spread)", "grid", (
                  NODE_ID, labelled("Primaries", "primaries", fmt=fmt_count),
                  labelled("Could Hold", "could_hold", fmt=fmt_count), labelled("Reason", "reason")),
                  list_at("blocked"), empty=None)),
    compact=("{kind} | {move_total:moves} | spread {spread_before:count} -> {spread_after:count}",
             Lines(list_at("moves"), MOVE_COLUMNS),
             Lines(list_at("skipped"), (labelled("", "shard_id", fmt=headed("skipped")), labelled("", "reason"))),
             Lines(list_at("left_out"), (labelled("", "node_id", fmt=headed("left out")),
                                         labelled("", "status"), labelled("", "reason"))),
             Lines(list_at("blocked"), (labelled("", "node_id", fmt=headed("blocked")), labelled("", "reason")))),
    prepare=move_plan_summary, items=(list_at("moves"), "moves"))
VIEWS["moves"] = View(columns=MOVE_COLUMNS)
VIEWS["move-results"] = View(columns=MOVE_RESULT_COLUMNS)
VIEWS["steered"] = View(sentence="{operation}: {said}", compact=("{operation} | {said}",))
VIEWS["contexts"] = View(columns=(labelled("Current", "current", fmt=lambda value: "*" if value else ""),
                                  *shown_as("name, url, protected, chosen_by")))
VIEWS["context"] = View(sentence="{name}", compact=("{name}",))
VIEWS["context-changed"] = View(sentence="Context {name} {done} ({path})", compact=("{name} | {done}",))
VIEWS["context-used"] = View(sentence="Switched to context {name} (default_context in {path})",
                             compact=("{name}",))
VIEWS["move-report"] = View(
    title="{title}[ on {sent_to}]", rows=tuple(labelled(label.title(), key + "_total", fmt=fmt_count)
                                               for key, label in MOVE_RESULTS) + (
        *shown_as("verified, operation"),
        labelled("Vectors Per Second", "vectors_per_second", fmt=lambda v: fmt_count(None if v is None else int(v))),
        labelled("Time Left", "seconds_left", fmt=fmt_duration)),
    sections=(Section("Moves", "grid", MOVE_RESULT_COLUMNS, list_at("moves")),),
    compact=(Lines(list_at("moves"), MOVE_RESULT_COLUMNS),),
    prepare=move_report_summary, items=(lambda report: move_report_summary(report)["moves"], "move-results"))
VIEWS["operations"] = View(columns=(
    *shown_as("operation, kind, node_id, state"), labelled("Completed", "completed", fmt=fmt_count),
    labelled("Moves", "moves", fmt=fmt_count), *shown_as("started_at:Started, updated_at:Updated, pid, url")))
EXPLAIN_NODE_COLUMNS = (NODE_ID, STATUS,
                        labelled("Primaries", "primaries", fmt=fmt_count), *shown_as("can_take, reason:Why"))
VIEWS["explain"] = View(
    title="Where {shard_id} can go", rows=shown_as(
        "shard_id, status, primary_node:Primary, replica_nodes:Replicas, movable, reason:Why, planned:Planned Move"),
    sections=(Section("Nodes", "grid", EXPLAIN_NODE_COLUMNS, list_at("nodes")),),
    compact=("{shard_id} | {status:status} | primary {primary_node} | planned: {planned}",
             Lines(list_at("nodes"), EXPLAIN_NODE_COLUMNS)),
    items=(list_at("nodes"), "explain-nodes"))
VIEWS["explain-nodes"] = View(columns=EXPLAIN_NODE_COLUMNS)


def one_row(data):
    # Return a key/value result as a list of one row, for --columns, --sort-by and --no-headers.
    return [data] if isinstance(data, dict) else []


# --------------------------------------------------------------------------------------------------
# Formats: one writer each
# --------------------------------------------------------------------------------------------------

# A format writes a result through `out` (a function of text), everything included down to its last
# newline, as write(view name, data, out, style); style is the Output: colour, the terminal's width,
# a --watch snapshot off a terminal, and the columns and headers --columns and --no-headers chose.
# Lists are written a batch at a time (BATCH items), never held whole as text.


def view_in(view, style):
    # Return the view a result is shown with, as --columns and --no-headers shape it.
    spec = VIEWS[view]
    if style.columns is not None:
        spec = spec._replace(columns=style.columns)
    return spec if style.headers else spec._replace(headers=False)


def to_json(data, indent=None):
    # Return strict JSON (RFC 8259, as jq reads it): no NaN or Infinity ever reaches stdout.
    import json
    try:
        return json.dumps(data, indent=indent, allow_nan=False)
    except ValueError:  # decode() turns the server's NaN and Infinity into null; anything left is ours
        raise BadResponse("the answer holds a number JSON cannot carry (NaN or Infinity)") from None
    except RecursionError:
        raise BadResponse("the cluster's answer is nested too deeply to print") from None


def write_json(view, data, out, style):
    # Write the server's objects as strict JSON, indented (never coloured); a --watch snapshot is
    # one line, for jq to stream. A list is encoded in batches of 8,192 pieces (about 100 KB), each
    # joined in C: a million shards are 450 MB of JSON, which would otherwise be built in memory
    # and copied again, and 40 million pieces handled one by one in Python cost a third of the time.
    if style.snapshot or not isinstance(data, list) or not data:  # encoded whole: nothing is written on failure
        out(to_json(data, indent=None if style.snapshot else 2) + "\n")
        return
    import itertools
    import json
    # One encoder over the whole list: a fresh one per item would build its nested
    # closures a million times, cycles the spaced collector would free late.
    pieces = json.JSONEncoder(indent=2, allow_nan=False).iterencode(data)
    written = False
    try:
        for batch in iter(lambda: "".join(itertools.islice(pieces, 8192)), ""):
            out(batch)  # nothing is written before the first batch is encoded
            written = True
    except (ValueError, RecursionError):
        if written:  # only a list whose first batch printed, and a later item nested past Python's limit
            raise BadResponse("the cluster's answer cannot be printed as JSON past this point (nested too "
                              "deeply); the output above is cut short") from None
        out(to_json(data, indent=2) + "\n")  # the one-shot encoder may manage it; else one clean line
        return
    out("\n")


def write_ndjson(view, data, out, style):
    # Write one compact JSON object per line: a list's items, or the one object.
    if not isinstance(data, list):
        out(to_json(data) + "\n")
        return
    if not data and style.snapshot:
        out("\n")  # a --watch snapshot of nothing is still a line
    for start in range(0, len(data), BATCH):
        out("".join(to_json(item) + "\n" for item in data[start:start + BATCH]))


def write_table(view, data, out, style):
    # Write human-readable blocks and grids, as the specification shows them; --watch snapshots
    # off a terminal are parted by a blank line.
    spec = view_in(view, style)
    end = "\n\n" if style.snapshot else "\n"
    if spec.columns:
        write_grid(spec.columns, as_list(data), out, style.color, style.width, spec.headers, end)
        return
    obj = dict(spec.prepare(data) if spec.prepare else as_dict(data), sent_to=style.sent_to)
    if spec.sentence:
        out(fill(spec.sentence, obj, style.color) + end)
        return
    title = fill(spec.title, obj)
    text = "\n".join(line for line in (title, "=" * len(title), render_rows(spec.rows, obj, style.color)) if line)
    out(text + "".join(render_section(section, obj, style.color, style.width) for section in spec.sections) + end)


def write_compact(view, data, out, style):
    # Write one line per object, fields joined by ' | ', for grep and awk.
    spec = view_in(view, style)
    if spec.columns:
        rows = as_list(data)
        if not rows:
            out("\n")
        for start in range(0, len(rows), BATCH):
            out("".join(line + "\n" for line in compact_lines(rows[start:start + BATCH], spec.columns, style.color)))
        return
    obj = dict(spec.prepare(data) if spec.prepare else as_dict(data), sent_to=style.sent_to)
    lines = []
    for part in spec.compact:
        if isinstance(part, str):
            lines.append(fill(part, obj, style.color))
        else:
            lines.extend(compact_lines(as_list(part.source(obj)), part.fields, style.color))
    out("\n".join(lines) + "\n")


def delimited_value(value):
    # Return a field as a CSV/TSV cell: text as it is (control characters escaped), nested values as JSON.
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    text = value if isinstance(value, str) else compact_json(value) if isinstance(value, (list, dict)) else str(value)
    if not text.isprintable():  # a server's ESC must not reach the terminal; tabs and newlines are CSV's business
        text = "".join(c if c.isprintable() or c in "\t\n\r" else repr(c)[1:-1] for c in text)
    return text


def csv_cell(text):
    # Return a CSV field by RFC 4180: quoted, its quotes doubled, when it holds a comma, a quote, CR or LF.
    if "," in text or '"' in text or "\n" in text or "\r" in text:
        return '"%s"' % text.replace('"', '""')
    return text


TSV_ESCAPES = {"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"}


def tsv_cell(text):
    # Return a TSV field as the format has it: never quoted; backslash, tab, newline and CR written
    # \\, \t, \n and \r, so every row is one line and cut -f and awk -F'\t' split it right.
    if "\\" in text or "\t" in text or "\n" in text or "\r" in text:
        return "".join(TSV_ESCAPES.get(c, c) for c in text)
    return text


def delimited(delimiter, escaped):
    # Return the writer of CSV (or TSV, by its delimiter and how it writes a cell).
    def write_delimited(view, data, out, style):
        # Write a header row of field names, then one row per item (an object is one row; a value not an
        # object is 'value'). The columns are the ones --columns chose; else the result's contract fields in
        # the contract's order, whatever the server sent, then any other field in the order it first appears.
        items = data if isinstance(data, list) else [data]
        spec = view_in(view, style)
        if style.columns is not None:
            names = [column.key for column in style.columns]
        else:
            names = list(dict.fromkeys(list(VIEWS[view].fields) + [
                name for item in items for name in (item if isinstance(item, dict) else ("value",))]))
            if not names and spec.columns:
                names = [column.key for column in spec.columns]

        def line(values):
            return delimiter.join(map(escaped, values)) + "\n"

        if spec.headers:
            out(line(names))
        elif not items:
            out("\n")  # nothing at all is still a line, as every format ends with one
        for start in range(0, len(items), BATCH):
            out("".join(line(delimited_value((item if isinstance(item, dict) else {"value": item}).get(name))
                             for name in names) for item in items[start:start + BATCH]))
    return write_delimited


def prometheus_label(value):
    # Return a label value, one to one: distinct IDs never share a series. A backslash is doubled and an
    # unprintable character other than a newline given as \xNN (\uNNNN), so no two IDs read alike ('n'
    # ESC and 'n\x1b' differ); then the format's own escapes (backslash, double quote, newline).
    text = value if isinstance(value, str) else fmt_text(value)
    if "\\" in text or not text.isprintable():
        text = "".join(c if (c.isprintable() or c == "\n") and c != "\\" else "\\\\" if c == "\\" else
                       "\\x%02x" % ord(c) if ord(c) < 0x100 else "\\u%04x" % ord(c) if ord(c) < 0x10000 else
                       "\\U%08x" % ord(c) for c in text)
        text = text.replace("\\", "\\\\").replace("\n", "\\n")
    return text.replace('"', '\\"')


def prometheus_number(value):
    return str(int(value)) if value.is_integer() and abs(value) < 2 ** 53 else repr(value)


def prometheus_up(command_name, answered, last_success):
    # Return the series every command's file ends with: whether the cluster answered this command
    # (1 or 0), and when it last did (left out when it never has).
    label = '{command="%s"}' % prometheus_label(command_name)
    text = ("# HELP %s 1 if the cluster answered the command, 0 if it could not be asked or failed\n"
            "# TYPE %s gauge\n%s%s %d\n" % (UP_METRIC, UP_METRIC, UP_METRIC, label, answered))
    if last_success is not None:
        text += ("# HELP %s When the command last got the cluster's answer (Unix time)\n# TYPE %s gauge\n"
                 "%s%s %s\n" % (LAST_SUCCESS_METRIC, LAST_SUCCESS_METRIC, LAST_SUCCESS_METRIC, label,
                                 prometheus_number(round(last_success, 3))))
    return text


def last_success_in(path):
    # Return the last-success time a previous run wrote to this Prometheus file, if it did (a FIFO or
    # device at the path holds none: it is not read).
    if not os.path.isfile(path):
        return None
    try:
        raw, _ = read_file(path, 1024 ** 2, timeout=1.0)
    except (OSError, ClusterError):
        return None
    for line in raw.decode("utf-8", "replace").splitlines():
        if line.startswith(LAST_SUCCESS_METRIC + "{"):
            return as_float(line.rsplit(" ", 1)[-1])
    return None


def write_prometheus(view, data, out, style):
    # Write the text exposition format (# HELP, # TYPE, one sample a line), for node_exporter's
    # textfile collector; a metric no row has a value for is left out, not written as 0.
    samples = VIEWS[view].samples
    if not samples:
        raise InvalidInput("--format prometheus is for %s; not for %s" % (
            ", ".join(name for name, spec in VIEWS.items() if spec.samples), view))
    repeated = {}  # a label set the cluster sent twice (two nodes of one ID): its series is written once
    for sample in samples:
        rows = sample.rows(data) if sample.rows else (data if isinstance(data, list) else [data])
        batch, started, seen = [], False, set()
        for row in rows:
            value = sample.value(row) if callable(sample.value) else as_float(field(row, sample.value))
            if value is None:
                continue
            if not started:
                batch += ["# HELP %s %s\n" % (sample.name, sample.help), "# TYPE %s gauge\n" % sample.name]
                started = True
            labels = ",".join('%s="%s"' % (label, prometheus_label(field(row, key))) for label, key in sample.labels)
            if labels in seen:  # named by its first label: the ID
                repeated[labels.split(",", 1)[0]] = True
                continue
            seen.add(labels)
            batch.append("%s%s %s\n" % (sample.name, "{%s}" % labels if labels else "", prometheus_number(value)))
            if len(batch) >= BATCH:
                out("".join(batch))
                batch = []
        if batch:
            out("".join(batch))
    out(prometheus_up(view, True, time.time()))
    if repeated:
        warn("the cluster sent %s more than once: written once, from the first (node_exporter refuses a series "
             "written twice)" % ", ".join(list(repeated)[:5]))


# The --format choices: a writer each.
FORMATS = {"json": write_json, "table": write_table, "compact": write_compact, "ndjson": write_ndjson,
           "csv": delimited(",", csv_cell), "tsv": delimited("\t", tsv_cell), "prometheus": write_prometheus}


def rendered(view, data, style):
    # Return a result as text, as FORMATS writes it (for stderr: a plan before its question).
    parts = []
    FORMATS[style.format](view, data, parts.append, style)
    return "".join(parts)


# --------------------------------------------------------------------------------------------------
# Shaping: --columns, --sort-by, --no-headers
# --------------------------------------------------------------------------------------------------


class Result:
    # A command's success: the data to print, the view it is shown with (None: the command's own),
    # and any warning.
    # (A failure is a ClusterError, which may carry data to print too: ClusterError.showing.)

    def __init__(self, data, view=None, warning=None):
        self.data, self.view, self.warning = data, view, warning


def field_names(result):
    # Return the fields of a list result: the contract's (or its view's columns), then any other the server sent.
    known = VIEWS[result.view].fields or [spec.key for spec in VIEWS[result.view].columns]
    return list(dict.fromkeys(list(known) + [k for item in as_list(result.data) if isinstance(item, dict)
                                             for k in item]))


def as_listed(result):
    # Return a list result as it is; a plan or report as the list it holds (its moves), and a key/value
    # result as one row, each shown as a list view is: what --columns, --sort-by and --no-headers shape.
    spec = VIEWS[result.view]
    if spec.items is not None:
        source, view = spec.items
        return Result(source(result.data), view, result.warning)
    if not spec.fields or spec.columns:
        return result
    row = result.view + "-row"  # its view, made when first asked for (not on every run's start)
    VIEWS.setdefault(row, View(columns=tuple(labelled(title_of(key), key) for key in spec.fields), fields=spec.fields))
    return Result(one_row(result.data), row, result.warning)


def sort_key(value):
    # Numbers (numeric strings too) before text, each in its own order.
    n = as_float(value)
    return (0, n, "") if n is not None else (1, 0.0, fmt_text(value))


def shaped(result, columns, sort_by, style):
    # Return (the result, the style to show it in) with --sort-by, --columns and --no-headers applied to
    # a list result, for every format.
    spec = VIEWS[result.view]
    if not spec.columns:  # a node removed after a drain: nothing to shape
        return result, style
    names = field_names(result)
    items = list(as_list(result.data))

    def known(flag, wanted):
        unknown = [name.lstrip("-") for name in wanted if name.lstrip("-") not in names]
        if unknown:
            raise InvalidInput("%s: no field %s; the fields are %s ('--columns help' lists them)"
                               % (flag, ", ".join(map(repr, unknown)), ", ".join(names)))
        return wanted

    orders = known("--sort-by", [f.strip() for f in (sort_by or "").split(",") if f.strip(" -")])
    for order in reversed(orders):  # stable sorts, the last field first
        name, descending = order.lstrip("-"), order.startswith("-")
        present = [i for i in items if field(i, name) is not None]
        missing = [i for i in items if field(i, name) is None]  # last, whichever the direction
        present.sort(key=lambda i: sort_key(field(i, name)), reverse=descending)
        items = present + missing
    if columns:
        wanted = known("--columns", [c.strip() for c in columns.split(",") if c.strip()])
        items = [{name: field(item, name) for name in wanted} for item in items]
        style = style._replace(columns=tuple(next((f for f in spec.columns if f.key == name),
                                                  labelled(title_of(name), name))  # one the view has not: titled
                                             for name in wanted))
    return Result(items, result.view, result.warning), style


# --------------------------------------------------------------------------------------------------
# Workflows: waits, progress, confirmation, plans carried out
# --------------------------------------------------------------------------------------------------


@contextmanager
def collections_spaced(restore=True):
    """Run the block with the cyclic garbage collector running once per 50,000 new containers, not
    every 700. Start-up (imports, the parser) and the parsing and rendering of a large list make
    hundreds of thousands of containers and no cycle, which it would scan over and over (2% of a
    status run, a third of the parse time of 100,000 shards). It is spaced, never paused: a failed
    request leaves cycles (urllib3's exceptions hold their connection and frames, about 20 KiB), and a
    wait of hours through failing polls must free them as it goes. A collector turned off stays off;
    the library never touches it. restore=False: the process ends after the block, spacing its
    teardown's collections too."""
    import gc
    previous = gc.get_threshold()
    if previous[0]:
        gc.set_threshold(max(previous[0], 50000), max(previous[1], 50), previous[2])
    try:
        yield
    finally:
        if restore:
            gc.set_threshold(*previous)


def signal_of(exc):
    # Return the signal's number behind a KeyboardInterrupt: 2 (SIGINT) unless it was an Interrupt.
    return getattr(exc, "signum", 2)


def interruption(exc):
    # 'interrupted', or 'terminated by SIGTERM' (SIGHUP): how the command was stopped, for messages.
    import signal
    signum = signal_of(exc)
    return "interrupted" if signum == 2 else "terminated by %s" % signal.Signals(signum).name


def plan_result(plan, view):
    # Return a dry run's outcome: the plan, or ClusterError (exit 1) only where the contract would refuse.
    warnings = ["%s: %s" % (c["name"], c["detail"]) for c in plan["checks"] if not c["passed"] and not c["blocking"]]
    if plan["would_succeed"]:
        return Result(plan, view, "; ".join(warnings) or None)
    reasons = "; ".join(c["detail"] for c in plan["checks"] if not c["passed"] and c["blocking"])
    raise ClusterError("the cluster would refuse this: " + reasons).showing(plan, view)


class ProgressLine:
    # Progress on stderr: one line redrawn in place on a terminal, ended with a newline when done.

    def __init__(self):
        self.live = is_tty(sys.stderr)
        self.drawn = False

    def draw(self, text):
        if self.live:
            err_write("\r%s\x1b[K" % terminal_text(text))
            self.drawn = True

    def close(self):
        if self.drawn:
            err_write("\n")
            self.drawn = False


class MigrationProgress(ProgressLine):
    # A migration's progress bar, with its rate and the time left, drawn only on a terminal.

    def __init__(self):
        super().__init__()
        self.first = None

    def update(self, migration):
        if not self.live:
            return
        percent = finite(field(migration, "progress"))
        done = finite(field(migration, "transferred_vectors"))
        total = finite(field(migration, "total_vectors"))
        now = CLOCK.now()
        if self.first is None:
            self.first = (now, done)
        elapsed, moved = now - self.first[0], done - self.first[1]
        rate = moved / elapsed if elapsed > 0 and moved > 0 else 0.0
        if not rate < 1e15:  # a count no cluster moves (1e308 sent, or infinity): no rate, no estimate
            rate = 0.0
        eta = fmt_duration((total - done) / rate) if rate and total >= done else "?"
        filled = int(min(100.0, max(0.0, percent)) / 5)
        self.draw("[%s%s] %5.1f%%  %s/%s vectors  %s vectors/s  ETA %s" % (
            "#" * filled, "-" * (20 - filled), percent, fmt_count(done), fmt_count(total), fmt_count(int(rate)), eta))


def event_stream(args):
    # Return, for -o ndjson, the writer of a run's events: one JSON object a line on stdout, flushed.
    if getattr(args, "output_format", None) != "ndjson":
        return None
    import json
    return lambda event: write(json.dumps(dict(event, at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())),
                                          separators=(",", ":")) + "\n")


def wait_for_migration(client, shard_id, migration, timeout, interval, stream=None):
    # Poll the shard until this migration ends, or the wait times out (exit 4); `stream` hears each
    # change of its status.
    migration_id = fmt_text(field(migration, "migration_id"))
    bar = MigrationProgress()
    latest = [migration]
    said = [None]

    def read():
        current = field(client.shard_status(shard_id), "migration")
        if isinstance(current, dict) and field(current, "migration_id") in (field(migration, "migration_id"), None):
            latest[0] = current
        bar.update(latest[0])
        if stream is not None and field(latest[0], "status") != said[0]:
            said[0] = field(latest[0], "status")
            stream({"migration_id": field(migration, "migration_id"), "shard_id": shard_id, "event": said[0],
                    "progress": field(latest[0], "progress")})
        return latest[0]

    try:
        current, ended, waited, last_error = poll_until(
            client, read, lambda m: field(m, "status") in ("COMPLETED", "FAILED"), timeout, interval)
    except KeyboardInterrupt as exc:
        bar.close()
        raise Interrupted("%s; migration %s of %s goes on: follow it again with 'cluster_cli.py shard-status "
                          "--shard-id %s --wait'" % (interruption(exc), migration_id, shard_id, shard_id),
                          signal_of(exc)) from None
    finally:
        bar.close()
    current = latest[0] if current is None else current
    state = fmt_text(field(current, "status")) or "unknown"
    if state == "COMPLETED":
        return Result(current, "migration")
    if state == "FAILED":
        raise ClusterError("migration %s of %s FAILED: %s" % (
            migration_id, shard_id, fmt_text(field(current, "error")) or "no reason given")
        ).showing(current, "migration")
    message = "migration %s of %s is still %s after %.1fs; it goes on: follow it again with "\
              "'cluster_cli.py shard-status --shard-id %s --wait'" % (migration_id, shard_id, state, waited, shard_id)
    if last_error:
        message += " (last poll: %s)" % last_error
    raise ConditionNotMet(message).showing(current, "migration")


def wait_for_status(client, wanted, timeout, interval):
    # Poll the cluster status until it is `wanted`, or the wait times out (exit 4).
    status, reached, waited, last_error = poll_until(
        client, client.cluster_status, lambda s: field(s, "status") == wanted, timeout, interval)
    if reached:
        return Result(status, "status")
    if status is None:
        raise ConditionNotMet("cluster did not become %s within %.1fs (%s)" % (wanted, waited, last_error))
    raise ConditionNotMet("cluster is %s, not %s, after %.1fs%s" % (
        fmt_text(field(status, "status")) or "unknown", wanted, waited,
        " (last poll: %s)" % last_error if last_error else "")).showing(status, "status")


def ask_yes_no(question):
    # Ask on the terminal; anything but y/yes (or end of input) is no.
    err_write(terminal_text(question) + " [y/N] ")
    answer = sys.stdin.readline()
    return answer.strip().lower() in ("y", "yes")


def will_ask(args):
    # Return whether confirm_change() will put a question on the terminal: show what it is about first.
    return is_tty(sys.stdin) and (not args.yes or bool(getattr(args, "protected", None)))


def confirm_change(args, action, undone, question=None):
    # Before a change is sent. In a protected context, its name must be typed on a terminal
    # (--yes does not skip it there) and --yes is needed off one; elsewhere `question` is asked on
    # a terminal unless --yes. A refusal is exit 1, `undone` saying what was not done.
    protected = getattr(args, "protected", None)
    on_terminal = is_tty(sys.stdin)
    if protected and not on_terminal:
        if not args.yes:
            raise ProtectedContext("context %r is protected: pass --yes to %s when not on a terminal; %s"
                                   % (protected, action, undone))
    elif protected:
        err_write(terminal_text("Context %r is protected. Type its name to %s: " % (protected, action)))
        if sys.stdin.readline().strip() != protected:
            raise ProtectedContext("context %r is protected and its name was not typed; %s" % (protected, undone))
    elif question and on_terminal and not args.yes and not ask_yes_no(question):
        raise ClusterError("aborted; " + undone)


class InFlight:
    # Around a change on the wire: when its answer is lost (a dropped connection, the
    # time running out, Ctrl-C), say it may have been applied and how to check.

    def __init__(self, what, check):
        self.what, self.check = what, check

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, traceback):
        if kind is not None and issubclass(kind, KeyboardInterrupt):
            raise Interrupted("%s while %s was in flight; it may or may not have been applied: check with '%s'"
                              % (interruption(exc), self.what, self.check), signal_of(exc)) from None
        if isinstance(exc, MaybeApplied):
            exc.hint = "check with '%s' before sending it again" % self.check
        if isinstance(exc, Redirected):
            exc.hint = "send it to the right URL with --url"
        return False


def read_json_file(path, flag, limit, timeout):
    # Read a file the CLI saved as JSON (a plan, a report) as a cluster's answer is read: up to
    # --max-response-size, its decoded size bounded the same way; a FIFO within the timeout.
    try:
        raw, _ = read_file(path, limit, timeout)
    except OSError as exc:
        raise InvalidInput("%s: cannot read %s: %s" % (flag, shown(path), exc.strerror or exc)) from None
    except InvalidInput as exc:
        raise InvalidInput("%s: %s" % (flag, exc.message)) from None
    try:
        return parse_json(raw.decode("utf-8"), limit)
    except ResponseTooLarge as exc:
        raise InvalidInput("%s: %s %s" % (flag, shown(path), exc.message.split("answer ", 1)[-1].replace(
            "max_response_size", "--max-response-size"))) from None
    except (ValueError, RecursionError) as exc:
        raise InvalidInput("%s: %s is not JSON: %s" % (flag, shown(path), str(exc) or "nested too deeply")) from None


def read_plan(path, limit, timeout):
    # Read a plan saved by 'rebalance --dry-run --format json' (or drain-node's), checked.
    plan = read_json_file(path, "--plan", limit, timeout)
    try:
        return check_plan(plan)
    except InvalidInput as exc:
        raise InvalidInput("--plan %s: %s" % (shown(path), exc.message.split(": ", 1)[-1])) from None


def watching(moves):
    return ", ".join("%s (%s; 'cluster_cli.py shard-status --shard-id %s')" % (
        fmt_text(m.get("migration_id")) or "no id", m["shard_id"], m["shard_id"]) for m in moves) or "none"


def state_folder():
    # Return where this machine keeps its operations and locks: $XDG_STATE_HOME/jadevectordb
    # (~/.local/state/jadevectordb).
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(base, "jadevectordb")


def private_folder(*parts):
    # Return a folder of the state folder, made (mode 0700) when missing, or a one-line ClusterError.
    path = os.path.join(state_folder(), *parts)
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
    except OSError as exc:
        raise ClusterError("cannot make %s, where runs keep their journals and locks: %s; nothing was sent (set "
                           "XDG_STATE_HOME to a folder this user can write)" % (path, exc.strerror or exc)) from None
    return path


def open_private(path, flags):
    # Open (or create, mode 0600) a file of the state folder: never through a symlink, never a FIFO or a
    # device put there (one would block the run, or take its writes), else a one-line ClusterError.
    import stat
    try:
        fd = os.open(path, flags | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0), 0o600)
    except OSError as exc:
        raise ClusterError("cannot open %s: %s; nothing more was sent" % (path, exc.strerror or exc)) from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise ClusterError("%s is not a regular file; nothing more was sent (remove it)" % path)
    return fd


MAX_JOURNAL_SIZE = 1024 ** 3  # an operation's journal: a plan of a million moves, and their events
OPERATION_NAME = r"^(rebalance|drain|plan)-[0-9]{8}-[0-9]{6}-[0-9a-f]{4}$"


# How the state files (journals, locks) are opened to be read: never through a link, never blocking on a FIFO.
READ_NO_FOLLOW = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)


class Journal:
    # An apply's record, operations/ID.jsonl under the state folder: one line of JSON per event, each
    # written whole by one write() to a file opened for appending and flushed to disk, so a crash leaves
    # at most a torn last line, which reading skips. The first line holds the plan and the cluster.

    def __init__(self, operation):
        self.operation = operation
        self.path = os.path.join(state_folder(), "operations", operation + ".jsonl")

    @staticmethod
    def new_id(kind):
        return "%s-%s-%s" % (kind, time.strftime("%Y%m%d-%H%M%S"), os.urandom(2).hex())

    def add(self, event, **fields):
        # Append one event, on disk (whole and fsynced) when this returns; else raise ClusterError and
        # leave the file as it was: a journal is a promise, so what it cannot say is not done.
        import json
        record = dict(event=event, at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **fields)
        line = redact(json.dumps(record, separators=(",", ":"), default=str) + "\n").encode("utf-8")
        fd = open_private(self.path, os.O_WRONLY | os.O_APPEND)
        try:
            size = os.fstat(fd).st_size
            try:
                written = os.write(fd, line)
                if written != len(line):  # a file-size limit or a full disk, reached inside the line
                    raise OSError("only %d of the line's %d bytes could be written" % (written, len(line)))
                os.fsync(fd)
            except OSError as exc:
                try:
                    os.ftruncate(fd, size)  # no torn line for the next one to be glued to
                except OSError:
                    pass
                raise ClusterError("cannot write the operation's journal %s: %s" % (
                    self.path, exc.strerror or exc)) from None
        finally:
            os.close(fd)

    def end(self, state):
        # Record how the run ended, if the journal can still be written: the ending is said either way.
        try:
            self.add("ended", state=state)
        except ClusterError:
            pass

    # The fields a record may carry, and what each must be: a line that is not such a record is skipped.
    SHAPE = {"event": str, "at": str, "shard_id": str, "source_node": str, "target_node": str, "operation": str,
             "cluster": str, "url": str, "state": str, "migration_id": str, "error": str, "pid": int, "plan": dict,
             "digest": str, "max_concurrent": int, "max_per_node": int}

    def records(self):
        # Return the journal's records. It is read like a stranger's file: never through a link, never a
        # FIFO or device, within its size; a line of another shape is skipped with a warning naming it.
        import json
        import stat
        try:
            fd = os.open(self.path, READ_NO_FOLLOW)
        except OSError as exc:
            import errno
            if exc.errno == errno.ELOOP:  # O_NOFOLLOW met a link
                raise InvalidInput("%s is a link, not an operation's journal" % self.path) from None
            raise InvalidInput("--resume: no operation %s (%s)" % (self.operation, exc.strerror or exc)) from None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_JOURNAL_SIZE:
                raise InvalidInput("%s is %s, not an operation's journal" % (
                    self.path, "larger than %s" % fmt_size(MAX_JOURNAL_SIZE) if stat.S_ISREG(info.st_mode)
                    else "not a regular file"))
            for what, stats in (("file", info), ("folder", os.stat(os.path.dirname(self.path)))):
                if os.name == "posix" and (stats.st_uid not in (0, os.geteuid()) or stats.st_mode & 0o022):
                    raise InvalidInput("%s: its %s may be written by another user (mode %03o, uid %d), who could "
                                       "change the moves it resumes; not trusted" % (
                                           self.path, what, stats.st_mode & 0o777, stats.st_uid))
            chunks = []
            while True:
                chunk = os.read(fd, 1024 ** 2)
                if not chunk:
                    break
                chunks.append(chunk)
        finally:
            os.close(fd)
        found = []
        lines = b"".join(chunks).decode("utf-8", "replace").split("\n")
        for at, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except (ValueError, RecursionError):
                record = None
            if isinstance(record, dict) and all(isinstance(record[k], kind) and not isinstance(record[k], bool)
                                                for k, kind in self.SHAPE.items() if record.get(k) is not None):
                found.append(record)
            elif at < len(lines):  # the last, unended line is one a crash tore: skipped quietly
                warn("%s line %d is not a record of this CLI's journals; skipped" % (self.path, at))
        return found


class Steering:
    # What a running operation hears from another terminal ('operations throttle', 'operations stop'):
    # the lines appended to its journal since it started, read at each scheduling round.

    def __init__(self, journal):
        self.journal, self.stopped, self.limits = journal, False, {}
        try:
            self.offset = os.path.getsize(journal.path)
        except OSError:
            self.offset = 0

    def __call__(self):
        import json
        try:
            fd = os.open(self.journal.path, READ_NO_FOLLOW)
            try:
                os.lseek(fd, self.offset, os.SEEK_SET)
                new = os.read(fd, 1024 ** 2)
            finally:
                os.close(fd)
        except OSError:
            new = b""
        whole = new[:new.rfind(b"\n") + 1]  # a line still being written is read next round
        self.offset += len(whole)
        for line in whole.decode("utf-8", "replace").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if not isinstance(record, dict):
                continue
            if record.get("event") == "throttle":
                self.limits.update({k: v for k, v in record.items() if k in ("max_concurrent", "max_per_node")
                                    and type(v) is int and 1 <= v <= 1000})
                note("throttled from another terminal: %s" % ", ".join(
                    "%s %d" % (k.replace("_", "-"), v) for k, v in sorted(self.limits.items())))
            elif record.get("event") == "stop" and not self.stopped:
                self.stopped = True
                note("stopped from another terminal: no new move starts; those running are followed to their end")
        return dict(self.limits, stop=self.stopped)


def lock_path(cluster):
    import hashlib
    return os.path.join(state_folder(), "locks", hashlib.sha256(cluster.encode("utf-8")).hexdigest()[:16] + ".lock")


def lock_held(cluster, operation):
    # Return whether a run holds this machine's lock on the cluster for this operation: the one sign of
    # life of a run (its pid may be reused, or be 1 in every container; it is shown, never trusted).
    import fcntl
    import json
    import stat
    if not isinstance(cluster, str):
        return False
    try:
        fd = os.open(lock_path(cluster), READ_NO_FOLLOW)
    except OSError:
        return False  # no lock was ever taken: nothing runs
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:  # held: by this operation, unless the holder names another
            try:
                holder = as_dict(json.loads(os.read(fd, 4096).decode("utf-8")))
            except (ValueError, OSError):
                holder = {}
            return holder.get("operation") in (operation, None)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def operation_state(records):
    # Return an operation as 'operations' lists it, and each move's last event ({shard_id: record}).
    head = records[0] if records and records[0].get("event") == "plan" else {}
    plan = as_dict(head.get("plan"))
    last, state = {}, "running"
    for record in records[1:]:
        if record.get("shard_id"):
            last[record["shard_id"]] = record
        elif record.get("event") == "ended":
            state = record.get("state") or "ended"
        elif record.get("event") == "resumed":
            state = "running"
            head = dict(head, pid=record.get("pid"))
    if state == "running" and not lock_held(head.get("cluster"), head.get("operation")):
        state = "interrupted"  # its process is gone (its lock with it) without saying how it ended
    moves = as_list(plan.get("moves"))
    return {"operation": head.get("operation"), "kind": plan.get("kind"), "node_id": plan.get("node_id"),
            "cluster": head.get("cluster"), "url": head.get("url"), "state": state, "moves": len(moves),
            "completed": sum(1 for r in last.values() if r.get("event") == "completed"),
            "started_at": head.get("at"), "updated_at": records[-1].get("at") if records else None,
            "pid": head.get("pid")}, last


@contextmanager
def cluster_lock(cluster, operation):
    """Hold this machine's lock on the cluster for the block, or refuse at once (exit 1) naming the
    run that holds it. An flock: the kernel lets it go when its process ends, however it ends."""
    import fcntl
    import json
    private_folder("locks")
    fd = open_private(lock_path(cluster), os.O_RDWR)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            try:
                holder = as_dict(json.loads(os.read(fd, 4096).decode("utf-8")))
            except ValueError:
                holder = {}
            raise ClusterError("another run is changing this cluster from this machine: pid %s, operation %s; "
                               "nothing was sent (see 'cluster_cli.py operations')" % (
                                   holder.get("pid", "unknown"), holder.get("operation", "unknown"))) from None
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "operation": operation}).encode("utf-8"))
        yield
    finally:
        os.close(fd)


class MoveProgress(ProgressLine):
    # A plan's progress on stderr: one live line on a terminal, a line per move otherwise; each
    # event but a poll kept in the operation's journal.

    def __init__(self, total, journal=None, vectors=0, stream=None):
        super().__init__()
        self.total, self.done, self.failed = total, 0, 0
        self.running, self.sending, self.numbers = {}, None, {}  # numbers: each move's, from its first event
        self.journal, self.stream = journal, stream
        self.began, self.vectors, self.vectors_done = CLOCK.now(), vectors, 0

    def pace(self):
        # Return the run's pace: moves done of the total, vectors per second over the moves completed by
        # this run, and the seconds the rest should take at that rate (None until one completes).
        elapsed = CLOCK.now() - self.began
        rate = self.vectors_done / elapsed if elapsed > 0 and self.vectors_done > 0 else None
        left = max(0, self.vectors - self.vectors_done)
        return {"moves_done": self.done, "moves_total": self.total,
                "vectors_per_second": None if rate is None else round(rate, 1),
                "seconds_left": 0 if not left else None if rate is None else round(left / rate, 1)}

    def paced(self):
        pace = self.pace()
        if pace["vectors_per_second"] is None:
            return ""
        return ", %s vectors/s, %s" % (fmt_count(int(pace["vectors_per_second"])), "%s left" % fmt_duration(
            pace["seconds_left"]) if pace["seconds_left"] else "all moved")

    def __call__(self, event, move):
        if event in ("lost", "back"):  # the cluster, not a move: said, not journaled
            self.close()
            note("the cluster does not answer (%s); still following %s" % (move.get("error"), words(
                len(self.running), "migration")) if event == "lost" else "the cluster answers again")
            return
        if self.journal is not None and event != "poll":
            self.journal.add(event, **{k: move.get(k) for k in ("shard_id", "source_node", "target_node",
                                                                 "migration_id", "error") if move.get(k)})
        if self.stream is not None and event != "poll":  # -o ndjson: a script follows the run, one line a change
            self.stream(dict({k: move.get(k) for k in ("shard_id", "source_node", "target_node", "migration_id",
                                                       "error") if move.get(k) is not None}, event=event))
        if event == "sending":
            self.sending = move
            return
        if event == "completed":  # one another operator made (no migration of this run's): not this run's pace
            self.vectors_done += int(finite(move.get("vector_count"))) if move.get("migration_id") else 0
            self.vectors -= 0 if move.get("migration_id") else int(finite(move.get("vector_count")))
        nth = self.numbers.setdefault(move["shard_id"], len(self.numbers) + 1)
        if event == "started":
            self.running[move["shard_id"]] = move
        elif event != "poll":
            self.running.pop(move["shard_id"], None)
            self.done += event == "completed"
            self.failed += event != "completed"
        if self.live:
            running = ", ".join("%s %s %s" % (fmt_text(m.get("migration_id")), m["shard_id"],
                                              fmt_percent(m.get("progress")) if m.get("progress") is not None else "")
                                for m in self.running.values())
            self.draw("moves %d/%d done, %d running, %d failed%s%s" % (self.done, self.total, len(self.running),
                                                                      self.failed, self.paced(),
                                                                      " | " + running if running else ""))
        elif event != "poll":
            note("move %d/%d %s: %s %s -> %s%s%s%s" % (
                nth, self.total,
                event if event in ("started", "completed") else event.upper(), move["shard_id"],
                move["source_node"], move["target_node"],
                " (migration %s)" % fmt_text(move.get("migration_id")) if move.get("migration_id") else
                " (by another operator)" if event == "completed" else "",
                ": " + move["error"] if move.get("error") else "", "; " + self.paced()[2:] if event == "completed"
                and self.paced() else ""))

    def interrupted(self, how="interrupted"):
        text = "%s; no new moves were started; migrations still running: %s" % (how, watching(
            list(self.running.values())))
        sent = self.sending
        if sent and sent["shard_id"] not in self.running and not sent.get("migration_id"):
            text += "; the move of %s was being sent and may or may not have started: check with "\
                    "'cluster_cli.py shard-status --shard-id %s'" % (sent["shard_id"], sent["shard_id"])
        return text


def plan_digest(plan):
    # Return the digest of a plan as it was reviewed and journaled: a resume refuses a plan that no longer
    # has it (edited by hand or by a bug; whoever can write the journal can also write a new digest).
    import hashlib
    import json
    return hashlib.sha256(json.dumps(plan, sort_keys=True, separators=(",", ":"), default=str).encode(
        "utf-8")).hexdigest()


def resume_command(args, operation):
    node = ""
    if args.command == "drain-node":
        node = " --node-id %s%s" % (args.node_id, " --remove" if args.remove else "")
    return "resume with 'cluster_cli.py %s%s --resume %s'" % (args.command, node, operation)


def resumed_moves(client, plan, last):
    # Return (moves to follow, moves done) of an operation: the moves its journal says were sent, as the
    # cluster has them now. A move is done only when the cluster agrees (its primary is on the target),
    # whatever the journal says; one the journal left open (a POST that may not have arrived, a move given
    # up on) is followed when its migration runs; every other move is left to be checked and sent.
    following, done = [], []
    sent = [move for move in plan["moves"] if last.get(move["shard_id"], {}).get("event") in (
        "completed", "started", "sending", "stalled", "unknown")]
    shards = {field(shard, "shard_id"): shard for shard in client.list_shards()} if sent else {}
    for move in sent:
        record = last[move["shard_id"]]
        event = record.get("event")
        known = dict(move, migration_id=record["migration_id"]) if record.get("migration_id") else move
        shard = shards.get(move["shard_id"])
        if shard is not None and copies(shard)[0] == move["target_node"]:
            done.append(known)
        elif event != "completed":
            shard = client.shard_status(move["shard_id"])
            migration = field(shard, "migration")
            if copies(shard)[0] == move["target_node"]:
                done.append(known)
            elif field(migration, "status") in RUNNING_MIGRATION and field(migration, "target_node") == \
                    move["target_node"]:
                following.append(dict(move, migration_id=field(migration, "migration_id")))
    return following, done


def report_ending(report, journal, hint, stopped=False):
    # Return the report of an apply that ran to its end, or raise what it came to: exit 1 for a move
    # that failed or was skipped, 4 for one given up on, the time running out or a stop asked for.
    summary = ", ".join("%d %s" % (len(report[key]), key.replace("_", " ")) for key, _ in MOVE_RESULTS
                        if report[key])
    if report["failed"] or report["skipped"]:
        journal.end("failed")
        first = (report["failed"] or report["skipped"])[0]
        raise ClusterError("the move of %s to %s %s: %s; %s" % (
            first["shard_id"], first["target_node"], "failed" if report["failed"] else "was not sent",
            first["error"], summary), hint).showing(report, "move-report")
    if report["stalled"] or report["unknown"] or report["running"] or report["not_started"]:
        journal.end("stalled" if report["stalled"] or report["unknown"] else "stopped" if stopped else "timed out")
        why = "moves were given up on" if report["stalled"] or report["unknown"] else\
            "stopped from another terminal ('operations stop')" if stopped else "--wait-timeout ran out"
        raise ConditionNotMet("%s: %s; the running migrations go on: %s" % (
            why, summary, watching(report["running"] + report["stalled"])), hint).showing(report, "move-report")
    if report["stale"]:
        journal.end("completed")
        warn("%d moves no longer fitted the cluster and were left out; see 'cluster_cli.py %s --dry-run'"
             % (len(report["stale"]), "rebalance" if report["kind"] != "drain" else "drain-node --node-id %s"
                % report["node_id"]))
        return Result(report, "move-report")
    if not report["verified"]:
        journal.end("failed")
        raise ClusterError("the moves completed, but the cluster does not match the plan: %s" % "; ".join(
            "%s holds %d primaries, planned %d" % (node, d["now"], d["planned"])
            for node, d in report["differences"].items())).showing(report, "move-report")
    journal.end("completed")
    return Result(report, "move-report")


def run_plan(client, args, plan, nothing, operation=None, last=None):
    # Show the plan (--dry-run), or confirm it on a terminal, apply it with progress, a journal and
    # this machine's lock on the cluster, and verify it. Every ending shows the report and, unless all
    # is done, the command that resumes.
    moves = plan["moves"]
    flying = [m for m in as_list(plan.get("in_flight")) if m.get("shard_id")]
    if flying and not operation:
        note("%s MIGRATING (not started by this run), counted on the node%s %s going to: %s" % (
            words_are(len(flying), "shard"), "" if len(flying) == 1 else "s",
            "it is" if len(flying) == 1 else "they are", ", ".join(
                "%s -> %s" % (m["shard_id"], m.get("target_node") or "unknown") for m in flying[:10])
            + (", ..." if len(flying) > 10 else "")))
    if not moves and not args.dry_run and args.plan:
        stale = client.stale_moves(plan)
        if stale:
            raise StalePlan("plan is stale: " + "; ".join(m["reason"] for m in stale), stale)
    if not moves:
        if nothing:
            note(nothing)
        return Result(plan, "move-plan")
    if args.dry_run:
        return Result(plan, "move-plan")
    these = "this move" if len(moves) == 1 else "these %d moves" % len(moves)
    following, done = resumed_moves(client, plan, last or {}) if operation else ([], [])
    if operation:  # what the cluster says is done and running, and what is left to send: shown first, always
        settled = {m["shard_id"] for m in following + done}
        left = [m for m in moves if m["shard_id"] not in settled]
        err_write(rendered("move-plan", dict(plan, moves=left, in_flight=following, title="Resume %s: %s left to "
                                             "send, %d done, %d running" % (operation, words(len(left), "move"),
                                                                            len(done), len(following))),
                           Output("table", width=stderr_width())))
    elif will_ask(args):
        err_write(rendered("move-plan", plan, Output("table", width=stderr_width())))
    confirm_change(args, ("resume " + operation) if operation else ("apply " + these), "nothing was moved",
                   ("Resume %s?" % operation) if operation else ("Apply %s?" % these))
    cluster = plan.get("cluster") or client.identity()
    resuming = operation is not None
    operation = operation or Journal.new_id(plan.get("kind") or "plan")
    private_folder("operations")
    with cluster_lock(cluster, operation):
        journal = Journal(operation)
        if resuming:
            journal.add("resumed", pid=os.getpid())
        else:
            reviewed = dict(plan, cluster=cluster)
            journal.add("plan", operation=operation, cluster=cluster, url=client.answered_by, pid=os.getpid(),
                        plan=reviewed, digest=plan_digest(reviewed))
        printer = MoveProgress(len(moves), journal, sum(int(finite(m.get("vector_count"))) for m in moves),
                               event_stream(args))
        printer.done = printer.started = len(done)  # a resumed run counts on from the moves done
        for move in following:  # and the migrations it follows are numbered, and named if it stops
            printer.started += 1
            printer.numbers[move["shard_id"]] = printer.started
            printer.running[move["shard_id"]] = move
        hint = resume_command(args, operation)
        steering = Steering(journal)
        try:
            report = client.apply_plan(plan, args.max_concurrent, args.strategy, args.wait_timeout, printer,
                                       args.poll_interval, args.max_per_node, args.stall_timeout, following, done,
                                       steering)
        except KeyboardInterrupt as exc:
            journal.end("interrupted")
            raise Interrupted(printer.interrupted(interruption(exc)) + "; " + hint, signal_of(exc)).showing(
                dict(getattr(exc, "report", {}), operation=operation), "move-report") from None
        except ClusterError as exc:  # "refused": stopped before any move was sent (a stale plan), not resumable
            journal.end("failed" if getattr(exc, "report", None) is not None else "refused")
            if isinstance(exc, ProgressFailed) and isinstance(exc.__cause__, ClusterError):  # the journal
                exc.message = "%s; no move was sent after that, and those running were followed to their end" % (
                    exc.__cause__.message)
            if isinstance(exc, MaybeApplied) and printer.sending:
                exc.hint = "check it with 'cluster_cli.py shard-status --shard-id %s'" % printer.sending["shard_id"]
            if getattr(exc, "report", None) is not None:
                exc.then = hint
            if getattr(exc, "report", None) is not None and exc.shown is None:
                exc.showing(dict(exc.report, operation=operation), "move-report")
            raise
        finally:
            printer.close()
        report["operation"] = operation
        report.update(printer.pace())
        return report_ending(report, journal, hint, steering.stopped)


def suggest_drain(plan):
    # Say that a node still holding primaries can be drained first, one watched move at a time.
    if plan["primary_shards"] and plan["would_succeed"]:
        note("%s holds %d primaries, which the cluster will move all at once; 'cluster_cli.py drain-node "
             "--node-id %s --remove' moves them first, a few at a time, and then removes it"
             % (plan["node_id"], len(plan["primary_shards"]), plan["node_id"]))


def draw_tick(result, command_line, output, interval, on_terminal):
    # Write one snapshot of --watch: redrawn in place on a terminal, appended otherwise.
    if on_terminal:
        now = time.strftime("%Y-%m-%d %H:%M:%S")
        write("\x1b[H\x1b[2J" + "Every %gs: %s    %s\n\n" % (interval, command_line, now))
    FORMATS[output.format](result.view, result.data, write, output._replace(snapshot=not on_terminal))


def watch(read, command_line, output, interval, count=0):
    # Repeat read() (a read-only command): redraw on a terminal, one snapshot per interval
    # otherwise, until Ctrl-C or `count` snapshots.
    on_terminal = is_tty(sys.stdout) and not output.file
    snapshots = 0
    try:
        for _ in rounds(interval):
            try:
                result = read()
            except ClusterError as exc:
                if exc.shown is not None:  # a --check that failed: the snapshot still shows
                    result = Result(*exc.shown)
                elif exc.retryable:
                    print_error("%s (still watching)" % exc)
                    result = None
                else:
                    raise
            if result is not None:
                with written_to(output.file):  # with --output, each snapshot replaces it
                    draw_tick(result, command_line, output, interval, on_terminal)
            snapshots += 1
            if count and snapshots >= count:
                return EXIT_OK
    except KeyboardInterrupt as exc:  # Ctrl-C is how a watch ends; SIGTERM or SIGHUP is the process ended
        return EXIT_OK if signal_of(exc) == 2 else 128 + signal_of(exc)


# --------------------------------------------------------------------------------------------------
# Settings from the command line
# --------------------------------------------------------------------------------------------------


def output_from(args, fmt):
    # How to print: the format resolved from the settings, colour only on a terminal.
    on_terminal = not args.output and is_tty(sys.stdout)
    color = on_terminal and not args.no_color and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"
    return Output(fmt, color, args.output, terminal_columns() if on_terminal else None)


def key_over_plain_http(urls, proxy_for=None):
    # Return where the key would travel in clear: each http:// URL other than a loopback one, and every
    # http:// URL reached through a proxy (the hop to it, or from it, is plain text), named with it.
    import ipaddress
    from urllib.parse import urlsplit
    exposed = []
    for url in urls:
        parts = urlsplit(url)
        proxy = proxy_for(url) if proxy_for else None
        if parts.scheme != "http":
            continue  # https: end to end, a proxy's CONNECT tunnel included
        if proxy:
            exposed.append("%s through the proxy %s" % (url, hide_credentials(proxy)))
            continue
        if parts.hostname == "localhost":
            continue
        try:
            if ipaddress.ip_address(parts.hostname).is_loopback:
                continue
        except ValueError:
            pass
        exposed.append(url)
    return exposed


def address_origin(resolved, context):
    # Return what to check when the cluster could not be reached: where its address came from.
    source = resolved.sources["address"]
    if source == DEFAULT_SOURCE.name:
        return "no address was given, so the default %s:%d was tried: set --host and --port, --url, %s or a " \
               "context" % (DEFAULT_HOST, DEFAULT_PORT, ENV_URL)
    return "check the address, which came from %s%s, and that a master runs there" % (
        source, " (context %s is in use, chosen by %s)" % (context.name, context.chosen_by)
        if context and not source.startswith("context") else "")


SHELL_SAFE = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789@%+=:,./-_"  # as shlex.quote's


def shell_word(text):
    # Return text as a shell reads it back: as it is when shlex.quote would leave it so (no import then).
    if text and not text.strip(SHELL_SAFE):
        return text
    import shlex
    return shlex.quote(text)


def address_flags(args):
    # Return the flags of this command line that say which cluster, and how to reach it: what a hint
    # repeats, so the command it names can be pasted as it is (never the key).
    flags = []
    for name in ("url", "host", "port", "api_prefix", "context", "config", "ca_cert"):
        value = getattr(args, name, None)
        if value is not None:
            flags += ["--" + name.replace("_", "-"), shell_word(str(value))]
    return flags + (["--insecure"] if getattr(args, "insecure", False) else [])


# --------------------------------------------------------------------------------------------------
# Options and the parser: what a command is, declared once; argparse built from it, only for the
# command that runs
# --------------------------------------------------------------------------------------------------


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    # argparse's formatter, keeping the docstrings' line breaks; argparse makes
    # one per option added, and would import shutil each time to size it.

    def __init__(self, prog, **kwargs):
        kwargs.setdefault("width", terminal_columns() - 2)
        super().__init__(prog, **kwargs)


COMMANDS = {}


class Parser(argparse.ArgumentParser):
    # argparse, with its errors as one line on stderr and exit code 2.
    #
    # Abbreviations are off: '--ho' must not quietly mean '--host'.

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message):
        raise InvalidInput("%s (see '%s --help')" % (self.explain(message), self.prog))

    def explain(self, message):
        # Return argparse's message with 'did you mean' for a mistyped command or option, and an
        # unknown option named as such (not as the value after it, taken for a command).
        import difflib
        options = list(self._option_string_actions)

        def like(word, choices):  # never the word typed itself
            close = difflib.get_close_matches(word, set(choices) - {word}, n=1, cutoff=0.6)
            return "; did you mean %r?" % close[0] if close else ""

        match = re.match(r"argument COMMAND: invalid choice: '([^']*)'", message)
        if match:
            argv = getattr(self, "argv", None) or []
            word = match.group(1)
            before = argv[:argv.index(word)] if word in argv else []
            unknown = [t for t in before if t.startswith("-") and t.split("=", 1)[0] not in options]
            if unknown:  # "--form compact status": compact was taken for the command
                flag = unknown[-1].split("=", 1)[0]
                return "unknown option %r%s" % (flag, like(flag, options))
            return "unknown command %r%s" % (word, like(word, list(COMMANDS)))
        stray = self.stray_words()
        if stray and (message.startswith("the following arguments are required: ") or
                      message.startswith("unrecognized arguments: ")):
            required = [a for a in self._actions if a.required and a.option_strings]
            hint = "; did you mean %s %s?" % (required[0].option_strings[-1], stray[0]) if required else ""
            return "stray word %r%s" % (stray[0], hint)
        match = re.match(r"unrecognized arguments: (\S+)", message)
        if match and not match.group(1).startswith("-"):
            return "stray word %r: the command takes options there, not words" % match.group(1)
        if match and match.group(1).startswith("-"):
            flag = match.group(1).split("=", 1)[0]
            name = next(filter(COMMANDS.__contains__, getattr(self, "argv", None) or []), None)
            sub = (getattr(self, "subparsers", None) or {}).get(name)
            options += list(sub._option_string_actions) if sub else []
            takers = []
            for other, declared in COMMANDS.items():
                for given in declared.options:
                    if flag in given.flags and other not in takers:
                        takers.append(other)
            if takers and flag not in options:  # another command's: say whose, not "did you mean" the same word
                return "%r is not an option of %s; %s take%s it" % (
                    flag, name or "the command line before a command",
                    ", ".join(takers[:-1]) + " and " * (len(takers) > 1) + takers[-1], "s" * (len(takers) == 1))
            return "unknown option %r%s" % (flag, like(flag, options))
        return message


    def stray_words(self):
        # Return the words after a command's name that no option or argument of it takes.
        argv = getattr(self, "argv", None) or []
        name = self.prog.rsplit(" ", 1)[-1]
        if name not in argv:
            return []
        valued = {flag: action for action in self._actions if action.nargs != 0 for flag in action.option_strings}
        positional = sum(1 for action in self._actions if not action.option_strings)
        found, skip = [], False
        for token in argv[argv.index(name) + 1:]:
            if skip:
                skip = False
            elif token.startswith("-") and token != "-":
                skip = token in valued
            else:
                found.append(token)
        return found[positional:]


_seconds = _argument_type(lambda text: check_seconds(text, "timeout"))
_id = _argument_type(lambda text: check_id(text, "id"))
_address = _argument_type(check_address)


def _non_negative_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("%r is not a whole number" % text) from None
    if not 0 <= value <= 100:
        raise argparse.ArgumentTypeError("%r must be from 0 to 100" % text)
    return value


def _at_least_one(text):
    value = _non_negative_int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("%r must be at least 1" % text)
    return value


# A status filter: the statuses wanted, or with a leading '!' those not wanted ('!HEALTHY'), as
# (negated, frozenset). Only the contract's statuses: a mistyped one would match nothing and read as
# "all clear".
StatusFilter = tuple_class("StatusFilter", "negated statuses")


def status_filter(choices):
    # Return the argparse type of --status over these statuses: 'A', 'A,B' or '!A[,B]', any letter case.
    def convert(text):
        negated = text.startswith("!")
        given = [part.strip().upper().replace("-", "_") for part in text[negated:].split(",")]
        unknown = [part for part in given if part not in choices]
        if unknown or not given:
            raise argparse.ArgumentTypeError("%s is not a status; use %s, several with commas, or '!' before them "
                                             "for all but those" % (shown(unknown[0] if unknown else text),
                                                                    ", ".join(choices)))
        return StatusFilter(negated, frozenset(given))
    return convert


class StatusChoices(tuple):
    # The statuses --status offers (completion lists them), holding every filter made of them (argparse
    # checks the converted value is among its choices).

    def __contains__(self, value):
        return isinstance(value, StatusFilter) or tuple.__contains__(self, value)


def status_matches(value, wanted):
    return wanted is None or (value in wanted.statuses) != wanted.negated


def status_option(what, choices):
    return option("--status", type=status_filter(choices), choices=StatusChoices(choices), metavar="STATUS[,STATUS...]",
                  help="only %s with one of these statuses, or with '!' none of them ('!HEALTHY'): %s"
                  % (what, ", ".join(choices)))


# The options every command takes, before or after its name (in the group argparse shows them in).
GLOBAL_OPTIONS = tuple(given.option for given in SETTINGS if given.option) + (
    option("--output", metavar="FILE",
           help="write the result to FILE instead of stdout, atomically (a temporary file renamed over it once "
                "complete; on failure FILE is left as it was)"),
    option("--raw", action="store_true", default=False,
           help="print the server's body exactly as received (for debugging), not the formatted result"),
    option("--no-color", action="store_true", default=False,
           help="never colour status words (also: NO_COLOR=1, TERM=dumb)"),
    option("-v", "--verbose", action="store_true", default=False,
           help="log each request, its status and time on stderr (the key is never shown)"),
    option("--version", action="version", version="%(prog)s " + __version__),
    option("--contexts", metavar="NAME[,NAME...]", help="ask these contexts' clusters at once (commands that "
           "only read): one entry per cluster, in this order, a failed one with its error"),
    switch("--all-contexts", "ask every context's cluster at once, in the contexts file's order"),
    option("--parallel", type=_at_least_one, default=DEFAULT_CONCURRENCY, metavar="N",
           help="with --contexts: the most clusters asked at once (default %d)" % DEFAULT_CONCURRENCY),
)
WATCH = (option("--watch", type=_seconds, nargs="?", const=DEFAULT_WATCH_INTERVAL, metavar="SECONDS",
                help="repeat every SECONDS (default %g) until Ctrl-C; JSON snapshots are one line each when not on "
                     "a terminal" % DEFAULT_WATCH_INTERVAL),
         option("--count", type=_non_negative_int, default=0, metavar="N", help="with --watch: stop after N snapshots"))
SHAPING = (option("--columns", metavar="FIELD[,FIELD...]",
                  help="only these fields, in this order, in every format ('--columns help' lists them)"),
           option("--sort-by", metavar="FIELD[,-FIELD...]",
                  help="sort by these fields (numbers as numbers; '-' before a field: descending)"),
           switch("--no-headers", "no header row in tables, CSV and TSV"))
STRATEGY = option("--strategy", param="strategy", type=str.upper, default="LIVE_COPY", choices=STRATEGIES,
                  help="how to move it (default LIVE_COPY)")


def waiting(what):
    # Return --wait-timeout and --poll-interval, for a wait on `what`.
    return (option("--wait-timeout", type=_seconds, default=DEFAULT_WAIT_TIMEOUT, metavar="SECONDS",
                   help="give up waiting for %s after SECONDS, exit 4 (default %g)" % (what, DEFAULT_WAIT_TIMEOUT)),
            option("--poll-interval", type=_seconds, default=DEFAULT_POLL_INTERVAL, metavar="SECONDS",
                   help="seconds between polls while waiting (default %g)" % DEFAULT_POLL_INTERVAL))


def yes(what=""):
    # Return -y/--yes, saying what it does besides going ahead in a protected context.
    return switch("-y", "--yes", (what + "; " if what else "") +
                  "in a protected context: go ahead when not on a terminal (on one, its name is asked for)")


def node_id_option(help, **settings):
    return option("--node-id", param="node_id", type=_id, help=help, **settings)


# What rebalance and drain-node share: the plan, its pace, the wait, the question, and the
# shaping of the plan's (or the report's) moves.
PLAN = (switch("--dry-run", "print the plan (--format json saves it); change nothing"),
        option("--plan", metavar="FILE", help="apply exactly this saved plan, after checking it still fits"),
        option("--resume", nargs="?", const="latest", metavar="OPERATION",
               help="go on with an operation that was stopped (default: the latest of this command on this "
                    "cluster): follow its running migrations, skip its finished moves, re-check the rest"),
        option("--max-concurrent", type=_at_least_one, default=1, metavar="N",
               help="migrations in flight at once (default 1)"),
        option("--max-per-node", type=_at_least_one, default=1, metavar="N",
               help="migrations into or out of one node at once (default 1)"),
        STRATEGY._replace(settings=dict(STRATEGY.settings, help="how each shard is moved (default LIVE_COPY)")),
        option("--wait-timeout", type=_seconds, default=DEFAULT_PLAN_TIMEOUT, metavar="SECONDS",
               help="stop starting moves and give up waiting after SECONDS, exit 4 (default %g: %g hours)"
               % (DEFAULT_PLAN_TIMEOUT, DEFAULT_PLAN_TIMEOUT / 3600)),
        option("--stall-timeout", type=_seconds, default=DEFAULT_STALL_TIMEOUT, metavar="SECONDS",
               help="give up on a move whose migration shows no progress for SECONDS; no new move goes into or "
                    "out of its nodes (default %g)" % DEFAULT_STALL_TIMEOUT),
        option("--poll-interval", type=_seconds, default=DEFAULT_POLL_INTERVAL, metavar="SECONDS",
               help="seconds between polls of the running migrations (default %g)" % DEFAULT_POLL_INTERVAL),
        yes("do not ask for confirmation")) + SHAPING

# A command: its name, its handler (the docstring is its help), its options, the view its result is
# shown with (unless the handler's Result names another), whether it changes the cluster, the one
# request it sends when it is one ((method, path) of ENDPOINTS, the API prefix in front), the command
# that shows whether that request was applied ({names} filled from the flags), the exit codes of its
# own ({code: why}), and whether it runs without a cluster (on this machine's files only).
Command = tuple_class("Command", "name handler options view changes sends check exits local writes_output")


def command(name, *options, view=None, changes=False, sends=None, check=None, exits=None, local=False,
            writes_output=False):
    # Declare the decorated function as the handler of command NAME, with what it takes and does.
    flat = tuple(given for entry in options for given in ((entry,) if isinstance(entry, Option) else entry))
    if view and not any(given.flags[0] == "--columns" for given in flat):  # every result can be shaped
        flat += SHAPING

    def declare(handler):
        request = (ENDPOINTS[sends][0], DEFAULT_API_PREFIX + ENDPOINTS[sends][1]) if sends else None
        COMMANDS[name] = Command(name, handler, flat, view, changes or bool(sends), request, check, exits or {}, local,
                                 writes_output)
        return handler
    return declare


def parameter_flags():
    # Return {the library's parameter: the flag that sets it}, for messages from the client's checks.
    return {given.param: given.flags[-1] for declared in [GLOBAL_OPTIONS] + [c.options for c in COMMANDS.values()]
            for given in declared if given.param}


# The exit codes each command can end with, in its --help.
_COMMON_EXITS = "0 ok, 1 the cluster refused or failed it, 2 invalid usage or input (nothing sent), "\
                "3 cluster unreachable, 130 interrupted, 143/129 terminated (SIGTERM/SIGHUP)"
_LOST_ANSWER = "3 also: the answer was lost after sending, so it may or may not have been applied"


def exit_codes(declared):
    # Return the exit codes a command can end with, as its --help shows them.
    text = "exit codes: " + _COMMON_EXITS
    if 4 in declared.exits:
        text += ", 4 " + declared.exits[4]
    if 1 in declared.exits:
        text += ". 1 also: " + declared.exits[1]
    return text + (". " + _LOST_ANSWER if declared.sends else "")


def check_with(args):
    # Return the command that shows whether this run's change was applied (its declared check).
    return "%s %s" % (DEFAULT_PROG, COMMANDS[args.command].check.format(**vars(args)))


def program_name(argv0):
    # Return the name to show for the command: as run (jadevectordb-cluster, a renamed script),
    # or cluster_cli.py when run some other way (python -m pytest, an embedding program).
    name = os.path.basename(argv0 or "")
    if name == "jadevectordb-cluster" or (name.endswith(".py") and name != "__main__.py"):
        return name
    return DEFAULT_PROG


def add_options(parser, options, suppress=False):
    # Give argparse these options. suppress: their defaults never overwrite a value given before the
    # command's name (the global options, repeated after it; the last occurrence wins).
    for given in options:
        settings = dict(given.settings)
        if suppress and settings.get("action") != "version":
            settings["default"] = argparse.SUPPRESS
        parser.add_argument(*given.flags, **settings)


# What the top-level help ends with, and what the command alone prints (to stderr, exit 2).
EXAMPLES = """examples:
  cluster_cli.py --host localhost --port 8080 status
  cluster_cli.py report                                  what is wrong, and what to run
  cluster_cli.py doctor                                  why the cluster cannot be reached
  cluster_cli.py nodes --status UNREACHABLE
  cluster_cli.py rebalance --dry-run
  cluster_cli.py COMMAND --help                          each command's options, with examples"""


def build_parser(argv=None):
    # Return the parser; with argv, only the commands named in it are built (an operator runs one
    # command, and pays for one): the others are only listed, with their summaries, for --help.
    parser = Parser(prog=PROG, description=__doc__.splitlines()[0],
                    epilog=EXAMPLES.replace(DEFAULT_PROG, PROG) + "\n\nexit codes: 0 ok, 1 the cluster refused or "
                           "failed the request, 2 invalid usage or input, 3 cluster unreachable, 4 condition not met, "
                           "130 interrupted (Ctrl-C), 143 and 129 terminated by SIGTERM and SIGHUP")
    add_options(parser.add_argument_group("connection and output (before or after the command)"), GLOBAL_OPTIONS)
    parser.argv = list(argv or [])
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    parser.subparsers = commands.choices
    commands.required = True
    named = None if argv is None else set(argv)
    for name, declared in COMMANDS.items():
        doc = "\n".join(line[4:] if line.startswith("    ") else line for line in declared.handler.__doc__.splitlines())
        doc = doc.replace(DEFAULT_PROG + " ", PROG + " ")
        if named is not None and name not in named:
            commands._choices_actions.append(commands._ChoicesPseudoAction(name, (), doc.splitlines()[0]))
            commands.choices[name] = None
            continue
        sub = commands.add_parser(name, help=doc.splitlines()[0], description=doc.strip())
        sub.argv = parser.argv
        sub.set_defaults(func=declared.handler)
        sub.epilog = exit_codes(declared)
        add_options(sub.add_argument_group("connection and output (before or after the command)"), GLOBAL_OPTIONS,
                    suppress=True)
        add_options(sub, declared.options)
        required = [action for action in sub._actions if action.required and action.option_strings]
        positional = [action for action in sub._actions if not action.option_strings]
        sub.usage = "%s %s %s%s[options]" % (PROG, name, "".join(
            "%s %s " % (action.option_strings[-1], action.metavar or action.dest.upper()) for action in required),
            "".join(("[{%s}] " if action.nargs == "?" else "{%s} ") % ",".join(action.choices) if action.choices
                    else "[%s] " % (action.metavar or action.dest.upper()) for action in positional))
    return parser


# --------------------------------------------------------------------------------------------------
# Commands: each declared once, beside its handler; the docstring is its help
# --------------------------------------------------------------------------------------------------

@command("status", switch("--check", "exit 4 unless the cluster is HEALTHY"),
         option("--wait-for", type=str.upper, choices=CLUSTER_STATUSES, metavar="STATUS",
                help="poll until the cluster is STATUS (%s)" % ", ".join(CLUSTER_STATUSES)),
         waiting("the status"), WATCH, view="status",
         exits={4: "not HEALTHY (--check) or not the status waited for (--wait-for)"})
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
        raise ConditionNotMet("cluster is %s, not HEALTHY" % (fmt_text(field(status, "status")) or "unknown")
                              ).showing(status, "status")
    return Result(status)


@command("diagnostics", view="diagnostics")
def cmd_diagnostics(client, args):
    """Show topology, node health, shard distribution, replication, performance and errors.

    example: cluster_cli.py diagnostics --format json | jq '.errors'
    """
    return Result(client.diagnostics())


@command("metrics", WATCH, view="metrics")
def cmd_metrics(client, args):
    """Show cluster-wide and per-node performance and resource metrics.

    example: cluster_cli.py metrics --format json | jq -r '.cpu_usage'
    """
    return Result(client.metrics())


@command("nodes", status_option("nodes", NODE_STATUSES),
         option("--role", type=str.upper, choices=("MASTER", "WORKER"), help="only nodes with this role"),
         SHAPING, WATCH, view="nodes")
def cmd_nodes(client, args):
    """List the cluster's nodes.

    example: cluster_cli.py nodes --status UNREACHABLE --format compact
             cluster_cli.py nodes --status '!HEALTHY'
    """
    nodes = client.list_nodes()
    if args.status or args.role:
        nodes = [n for n in nodes if status_matches(field(n, "status"), args.status)
                 and (not args.role or field(n, "role") == args.role)]
    return Result(nodes)


@command("add-node", node_id_option("ID of the new node", required=True),
         option("--address", param="address", required=True, type=_address, metavar="HOST:PORT",
                help="address the node serves on"),
         switch("--wait", "wait until the node is HEALTHY, saying each status it shows"),
         waiting("the node"), yes(),
         view="node-added", sends="add_node", check="nodes",
         exits={1: "a protected context's change not confirmed", 4: "not HEALTHY when --wait-timeout ran out"})
def cmd_add_node(client, args):
    """Add a node to the cluster (it is JOINING, then HEALTHY).

    example: cluster_cli.py add-node --node-id node-worker-003 --address 192.168.1.13:8080
             cluster_cli.py add-node --node-id node-worker-003 --address 192.168.1.13:8080 --wait
    """
    confirm_change(args, "add node %s" % args.node_id, "nothing was sent")
    with InFlight("the request to add %s" % args.node_id, check_with(args)):
        added = client.add_node(args.node_id, args.address)
    if not args.wait:
        return Result(added)
    node_id, seen = args.node_id, [field(added, "status")]
    note("node %s added, %s; waiting until it is HEALTHY (Ctrl-C stops waiting, not the join)"
         % (node_id, fmt_text(seen[0]) or "of unknown status"))

    def read():
        node = next((n for n in client.list_nodes() if field(n, "node_id") == node_id), None)
        status = field(node, "status") if node else "not listed"
        if status != seen[-1]:
            note("node %s is %s" % (node_id, fmt_text(status)))
            seen.append(status)
        return node

    node, ready, waited, last_error = poll_until(client, read, lambda n: field(n, "status") == "HEALTHY",
                                                 args.wait_timeout, args.poll_interval)
    answer = dict({k: v for k, v in added.items() if k != "message"}, status=seen[-1])
    if not ready:
        raise ConditionNotMet("node %s is still %s after %.1fs; it goes on joining: follow it with '%s nodes "
                              "--status JOINING'%s" % (node_id, fmt_text(seen[-1]) or "not HEALTHY", waited,
                                                       DEFAULT_PROG, " (last poll: %s)" % last_error
                                                       if last_error else "")).showing(answer, "node-added")
    return Result(answer)


@command("remove-node", node_id_option("ID of the node to remove", required=True),
         switch("--dry-run", "show the impact; change nothing"),
         yes("do not ask for confirmation"), view="node-removed",
         sends="remove_node", check="nodes",
         exits={1: "a dry run the cluster would refuse, a declined question or protected context"})
def cmd_remove_node(client, args):
    """Remove a node; its shards are redistributed to the remaining nodes.

    On a terminal it shows the impact and asks first (--yes skips the question).
    example: cluster_cli.py remove-node --node-id node-worker-003 --dry-run
    """
    node_id = args.node_id
    if args.dry_run:
        plan = plan_node_removal(client, node_id)
        suggest_drain(plan)
        return plan_result(plan, "removal-plan")
    if will_ask(args):  # the impact, before the question
        plan = plan_node_removal(client, node_id)
        err_write(rendered("removal-plan", plan, Output("table", width=stderr_width())).replace(
            "Dry run: ", "Confirm: ", 1))  # the same table, headed as the question it comes before
        suggest_drain(plan)
        try:
            plan_result(plan, "removal-plan")
        except ClusterError as exc:
            raise ClusterError(exc.message + "; nothing was removed") from None
    confirm_change(args, "remove node %s" % node_id, "node %s was not removed" % node_id,
                   "Remove node %s?" % node_id)
    with InFlight("the request to remove %s" % node_id, check_with(args)):
        return Result(client.remove_node(node_id))


@command("node-health", node_id_option("ID of the node", required=True), view="node-health")
def cmd_node_health(client, args):
    """Show one node's health, resource use and checks.

    example: cluster_cli.py node-health --node-id node-worker-001
    """
    return Result(client.node_health(args.node_id))


@command("shards", option("--database-id", param="database_id", type=_id, help="only shards of this database"),
         node_id_option("only shards with a copy (primary or replica) on this node"),
         status_option("shards", SHARD_STATUSES),
         switch("--check", "exit 4 when a shard listed is not HEALTHY, naming them"),
         SHAPING, WATCH, view="shards", exits={4: "a shard is not HEALTHY (--check)"})
def cmd_shards(client, args):
    """List shards, optionally only those of a database, a node or statuses.

    example: cluster_cli.py shards --format json | jq '[.[] | select(.replicas < 2)]'
             cluster_cli.py shards --check          (exit 4 naming any shard not HEALTHY)
             cluster_cli.py shards --status '!HEALTHY' --format compact
    """
    wanted = args.status
    one = next(iter(wanted.statuses)) if wanted and not wanted.negated and len(wanted.statuses) == 1 else None
    shards = client.list_shards(args.database_id, args.node_id, one)  # the server filters what it can
    # Filter here too, in case a server ignores the query parameters.
    if args.database_id or args.node_id or wanted:
        shards = [s for s in shards if (not args.database_id or field(s, "database_id") == args.database_id)
                  and (not args.node_id or args.node_id in holders(s)) and status_matches(field(s, "status"), wanted)]
    if args.check:
        unwell = ["%s (%s)" % (fmt_text(field(s, "shard_id")), fmt_text(field(s, "status")) or "no status")
                  for s in shards if field(s, "status") != "HEALTHY"]
        if unwell:
            raise ConditionNotMet("%s not HEALTHY: %s" % (words_are(len(unwell), "shard"), ", ".join(
                unwell[:20]) + (", ..." if len(unwell) > 20 else ""))).showing(shards, "shards")
    return Result(shards)


@command("shard-status", option("--shard-id", param="shard_id", required=True, type=_id, help="ID of the shard"),
         switch("--wait", "follow its running migration to the end, with progress on a "
                                                    "terminal (exit 1 if it FAILED)"),
         waiting("the migration"), WATCH, view="shard-status",
         exits={4: "its migration still running when --wait-timeout ran out", 1: "its migration FAILED (--wait)"})
def cmd_shard_status(client, args):
    """Show one shard and its latest migration; --wait follows that migration to its end.

    example: cluster_cli.py shard-status --shard-id shard-00
             cluster_cli.py shard-status --shard-id shard-00 --wait --wait-timeout 3600
    """
    shard = client.shard_status(args.shard_id)
    if not args.wait:
        return Result(shard)
    if args.watch:
        raise InvalidInput("--wait does not go with --watch")
    migration = field(shard, "migration")
    if isinstance(migration, dict) and field(migration, "status") in RUNNING_MIGRATION:
        note("following migration %s of %s (Ctrl-C stops following, not the migration)"
             % (fmt_text(field(migration, "migration_id")) or "(no id given)", args.shard_id))
        return wait_for_migration(client, args.shard_id, migration, args.wait_timeout, args.poll_interval,
                                  event_stream(args))
    if isinstance(migration, dict) and field(migration, "status") == "FAILED":
        raise ClusterError("migration %s of %s FAILED: %s" % (
            fmt_text(field(migration, "migration_id")), args.shard_id,
            fmt_text(field(migration, "error")) or "no reason given")).showing(migration, "migration")
    note("no migration of %s is running%s" % (args.shard_id, "; its latest, %s, is %s" % (
        fmt_text(field(migration, "migration_id")), fmt_text(field(migration, "status")) or "of unknown status")
        if isinstance(migration, dict) else ""))
    return Result(shard)


@command("migrate-shard",
         option("--shard-id", param="shard_id", required=True, type=_id, help="ID of the shard to move"),
         option("--to-node", param="target_node", required=True, type=_id, help="node to move it to"),
         option("--from-node", param="source_node", type=_id,
                help="node it is on now (its primary); checked before anything is sent"), STRATEGY,
         switch("--dry-run", "check whether it would be accepted; change nothing"),
         switch("--wait", "wait for the migration to end, with progress on a terminal"),
         yes(), waiting("the migration"), view="migration-started",
         sends="migrate_shard", check="shard-status --shard-id {shard_id}",
         exits={4: "still running when --wait-timeout ran out",
                1: "a FAILED migration, a refused dry run, a protected context not confirmed"})
def cmd_migrate_shard(client, args):
    """Move a shard's primary copy to another node.

    Strategies: LIVE_COPY (zero downtime), SNAPSHOT (brief read-only switchover),
    INCREMENTAL (incremental sync, final switchover).
    example: cluster_cli.py migrate-shard --shard-id shard-00 --from-node node-worker-001 \\
               --to-node node-worker-003 --strategy LIVE_COPY --wait
    """
    shard_id, target, source, strategy = args.shard_id, args.to_node, args.from_node, args.strategy
    if args.dry_run:
        return plan_result(plan_migration(client, shard_id, target, source, strategy), "migration-plan")
    if source is not None:
        primary = field(client.shard_status(shard_id), "primary_node")
        if primary is not None and primary != source:
            raise ClusterError("%s's primary is on %s, not %s; no migration was started"
                               % (shard_id, fmt_text(primary), source))
    confirm_change(args, "migrate %s to %s" % (shard_id, target), "no migration was started")
    with InFlight("the request to migrate %s" % shard_id, check_with(args)):
        migration = client.migrate_shard(shard_id, target, source, strategy)
    if not args.wait:
        return Result(migration)
    # Said first, so the operator has the id whatever happens while waiting.
    note("migration %s of %s started; waiting for it (Ctrl-C stops waiting, not the migration)"
         % (fmt_text(field(migration, "migration_id")) or "(no id given)", shard_id))
    return wait_for_migration(client, shard_id, migration, args.wait_timeout, args.poll_interval, event_stream(args))


@command("health", view="health")
def cmd_health(client, args):
    """Check that the node this CLI talks to is alive (GET /health).

    example: cluster_cli.py health --format compact
    """
    return Result(client.health())


VIEWS["version"] = View(fields=words_in("client server api_prefix contract"), title="Version",
                        rows=shown_as("client, server, api_prefix:API Prefix, contract"),
                        compact=("client {client}[ | server {server}] | {api_prefix} | contract {contract}",))


@command("version", view="version", exits={3: "the server's version could not be read (the client's is shown)"})
def cmd_version(client, args):
    """Show this CLI's version, the server's (from GET /health), the API prefix in use and the contract's
    version (--version prints the CLI's alone, and asks nothing).

    example: cluster_cli.py version --format compact
    """
    said = {"client": __version__, "server": None, "api_prefix": client.api_prefix,
            "contract": DEFAULT_API_PREFIX.rsplit("/", 1)[1]}
    try:
        said["server"] = fmt_text(field(client.health(), "version")) or None
    except ClusterUnreachable as exc:
        raise PartlyRead("the server's version: %s" % exc.message).showing(said, "version") from None
    return Result(said)


def all_operations():
    # Return every operation kept on this machine, oldest first: (its state, each move's last event, records).
    folder = os.path.join(state_folder(), "operations")
    try:
        names = sorted(n for n in os.listdir(folder) if n.endswith(".jsonl"))
    except OSError:
        return []
    found = []
    for name in names:
        try:
            records = Journal(name[:-len(".jsonl")]).records()
        except InvalidInput as exc:  # a FIFO, a device, a link: not ours to read
            warn("%s; skipped" % exc.message)
            continue
        if records:
            state, last = operation_state(records)
            found.append((state, last, records))
    found.sort(key=lambda item: (item[0]["started_at"] or "", item[0]["operation"] or ""))
    return found


def refuse_both(args):
    # --resume goes on with the operation's own plan: --plan or --dry-run beside it is a mistake.
    for flag, given in (("--plan", args.plan), ("--dry-run", args.dry_run), ("--balance-by", getattr(
            args, "balance_by", "shards") != "shards")):
        if given:
            raise InvalidInput("--resume goes on with the operation's own plan: %s does not go with it" % flag)


def operation_to_resume(client, args, kind):
    # Return (operation, its plan, each move's last event) for --resume: the one named, or the latest
    # of this command (and node) on this cluster that did not complete.
    wanted = args.resume
    if wanted == "latest":
        cluster = client.identity()
        candidates = [(state, last, records) for state, last, records in all_operations()
                      if state["kind"] == kind and state["cluster"] == cluster
                      and state["state"] not in ("completed", "refused")
                      and (kind != "drain" or state["node_id"] == args.node_id)]
        if not candidates:
            raise InvalidInput("--resume: no stopped %s operation on this cluster (see 'cluster_cli.py operations')"
                               % kind)
        state, last, records = candidates[-1]
    else:
        if not re.match(OPERATION_NAME, wanted):
            raise InvalidInput("--resume: %s is not an operation's name (such as rebalance-20261202-090000-3f2a; "
                               "see 'cluster_cli.py operations')" % shown(wanted))
        records = Journal(wanted).records()
        state, last = operation_state(records)
    head = as_dict(records[0] if records else {})
    plan = as_dict(head.get("plan"))
    if head.get("digest") != plan_digest(plan):
        raise InvalidInput("--resume: the plan in %s is not the one that was reviewed (%s); nothing was sent: make a "
                           "new plan" % (Journal(state["operation"] or "?").path, "it was changed since" if
                                         head.get("digest") else "it carries no digest of it"))
    if state["kind"] != kind or (kind == "drain" and state["node_id"] != args.node_id):
        raise InvalidInput("--resume: %s is a %s%s, not this command's" % (
            state["operation"], state["kind"], " of %s" % state["node_id"] if state["node_id"] else ""))
    if state["state"] in ("completed", "refused"):
        raise InvalidInput("--resume: %s is %s; nothing to resume" % (state["operation"], "completed" if state[
            "state"] == "completed" else "refused before any move was sent: make a new plan"))
    if state["state"] == "running":
        raise ClusterError("--resume: %s is still running (pid %s); nothing was sent" % (
            state["operation"], state["pid"]))
    if state["cluster"] != client.identity():
        raise InvalidInput("--resume: %s was run on another cluster (%s)" % (state["operation"], state["cluster"]))
    note("resuming %s: %d of %d moves completed" % (state["operation"], state["completed"], state["moves"]))
    for record in records:  # a throttle given while it ran (or since) is kept
        if record.get("event") == "throttle":
            for name in ("max_concurrent", "max_per_node"):
                if type(record.get(name)) is int and 1 <= record[name] <= 1000:
                    setattr(args, name, record[name])
    return state["operation"], check_plan(plan), last


@command("rebalance", option("--balance-by", choices=BALANCE_BY, default="shards",
                             help="even out primary counts (default) or their vectors"),
         PLAN, view="move-report", changes=True,
         exits={4: "--wait-timeout ran out, or a move was given up on (--stall-timeout)", 1: "a failed move, a stale "
                "plan, another run on this cluster, a declined question or protected context, a cluster that does "
                "not match the plan afterwards. The running migrations go on after 4 and 130: --resume follows "
                "them"})
def cmd_rebalance(client, args):
    """Even out the primaries over the HEALTHY nodes: plan, show, confirm, apply, verify.

    The plan is as even as the copies allow, in the fewest moves (chains through a third node
    included); shards already MIGRATING count where they go. Moves run --max-concurrent at a
    time, --max-per-node into or out of one node; a move whose migration stops progressing
    (--stall-timeout) or fails keeps new moves off its nodes. Every apply is kept as an
    operation ('operations' lists them): stopped, it resumes with --resume.
    example: cluster_cli.py rebalance --dry-run
             cluster_cli.py rebalance --dry-run --format json > plan.json
             cluster_cli.py rebalance --plan plan.json --max-concurrent 2 --yes
             cluster_cli.py rebalance --resume
    """
    if args.resume:
        refuse_both(args)
        operation, plan, last = operation_to_resume(client, args, "rebalance")
        return run_plan(client, args, plan, "nothing to move", operation, last)
    plan = read_plan(args.plan, client.max_response_size, client.timeout) if args.plan else\
        client.plan_rebalance(args.balance_by)
    if args.plan and plan.get("kind", "rebalance") != "rebalance":
        raise InvalidInput("plan: %s is a %s plan, not a rebalance" % (args.plan, plan.get("kind")))
    joining = [n["node_id"] for n in as_list(plan.get("left_out")) if n.get("status") == "JOINING"]
    if joining:
        one = len(joining) == 1
        nodes, it = "%s %s JOINING" % (", ".join(joining), "is" if one else "are"), "it" if one else "them"
        if not plan["moves"]:  # balanced without them: not what the operator is waiting for
            raise ConditionNotMet("nothing to move yet: %s and %s no primary; wait until %s HEALTHY ('%s add-node "
                                  "... --wait', or '%s nodes --status JOINING'), then plan again" % (
                                      nodes, "holds" if one else "hold", "it is" if one else "they are",
                                      DEFAULT_PROG, DEFAULT_PROG)).showing(plan, "move-plan")
        note("%s: this plan leaves %s out; once %s HEALTHY, plan again to spread primaries onto %s" % (
            nodes, it, "it is" if one else "they are", it))
    return run_plan(client, args, plan, "already balanced: nothing to move" if not plan.get("blocked") else
                     "nothing can even the spread further: copies are in the way (the dry run's Blocked part names "
                     "them)")


def wait_out(client, args, plan):
    # Wait for the migrations to or from the drained node that no run of ours started, then plan again.
    flying = as_list(plan.get("in_flight"))
    if not flying or args.dry_run:
        return plan
    ids = {m["shard_id"] for m in flying}
    names = ", ".join(sorted(ids))
    note("waiting for %s to or from %s to end first: %s" % (words(len(flying), "migration"), args.node_id, names))
    _, ended, waited, _ = poll_until(client, lambda: client.list_shards(status="MIGRATING"),
                                     lambda shards: not ids & {field(s, "shard_id") for s in shards},
                                     args.wait_timeout, args.poll_interval)
    if not ended:
        raise ConditionNotMet("migrations to or from %s still running after %.1fs: %s; nothing was moved" % (
            args.node_id, waited, names))
    return client.plan_drain(args.node_id)


def follow_replicas(client, args, held):
    # After a removal, follow the shards the node held until each has its replication factor again
    # (restored(): the server's word, or the copies it lists), saying each change on stderr; end with
    # exit 4 naming those still short when nothing changed for --stall-timeout, or at --wait-timeout.
    if not held:
        return
    factor = number(field(client.cluster_status(), "replication_factor")) or 1
    held = set(held)

    def short(shards):
        return sorted(field(s, "shard_id") for s in shards if field(s, "shard_id") in held and not restored(s, factor))

    def named(ids):
        return ", ".join(ids[:20]) + (", ..." if len(ids) > 20 else "")

    note("following %s the node held until each has %d copies (giving up after %s with no change)"
         % (words(len(held), "shard"), factor, seconds(args.stall_timeout)))
    seen = {"short": None, "at": CLOCK.now()}

    def settled(shards):  # restored, or stalled: no change for --stall-timeout
        missing = short(shards)
        if missing != seen["short"]:
            if missing:
                note("%d of %s restored; still short: %s" % (len(held) - len(missing), words(len(held), "shard"),
                                                            named(missing)))
            seen.update(short=missing, at=CLOCK.now())
        return not missing or CLOCK.now() - seen["at"] >= args.stall_timeout

    shards, ended, waited, _ = poll_until(client, client.list_shards, settled, args.wait_timeout, args.poll_interval)
    missing = sorted(held) if shards is None else short(shards)
    if missing:
        raise ConditionNotMet("%s was removed, but %s still under-replicated %s: %s; the cluster may still copy "
                              "them: 'shards --check' shows them" % (
                                  args.node_id, words_are(len(missing), "shard"),
                                  "with no change for %s" % seconds(args.stall_timeout) if ended else
                                  "after %.1fs" % waited, named(missing)))
    note("replication factor %d restored on the %s %s held" % (factor, words(len(held), "shard"), args.node_id))


@command("drain-node", node_id_option("ID of the node to drain", required=True),
         option("--remove", action="store_true",
                help="then remove the node, and follow its shards until each has its replication factor again"),
         PLAN, view="move-report", changes=True, check="nodes",
         exits={4: "--wait-timeout ran out, a move was given up on (--stall-timeout), a primary with nowhere to go "
                "stays (the others moved; the node is not removed), or shards were left under-replicated after "
                "--remove", 1: "a failed move, a stale plan, "
                "another run on this cluster, a declined question or protected context. The running migrations go "
                "on after 4 and 130: --resume follows them"})
def cmd_drain_node(client, args):
    """Move every primary off a node, check it holds none, and with --remove remove it.

    Same plan, confirmation, progress, journal, --resume and failure handling as rebalance.
    Migrations to or from the node that were already running are waited out first. The dry
    run lists the replicas the node holds: after --remove, the command follows them until the
    cluster has copied each elsewhere (exit 4 naming any left short).
    example: cluster_cli.py drain-node --node-id node-worker-002 --dry-run
             cluster_cli.py drain-node --node-id node-worker-002 --remove --yes
    """
    if args.resume:
        refuse_both(args)
        operation, plan, last = operation_to_resume(client, args, "drain")
        result = run_plan(client, args, plan, "nothing to move", operation, last)
    else:
        plan = read_plan(args.plan, client.max_response_size, client.timeout) if args.plan else\
            wait_out(client, args, client.plan_drain(args.node_id))
        if args.plan and (plan.get("kind") != "drain" or plan.get("node_id") != args.node_id):
            raise InvalidInput("plan: %s is not a drain plan for %s" % (args.plan, args.node_id))
        staying = len(as_list(plan.get("skipped"))) - len(as_list(plan.get("stuck")))  # the stuck are said below
        result = run_plan(client, args, plan, "nothing can move off %s: its %d %s, skipped (--dry-run says why)"
                           % (args.node_id, staying, "primary stays" if staying == 1 else "primaries stay")
                           if staying else "" if plan.get("stuck") else
                           "%s holds no primary: nothing to move" % args.node_id)
    stuck = [s for s in as_list(plan.get("stuck")) if isinstance(s, dict)]
    if stuck:  # what could move did (or would); what stays is the answer, and the node is kept
        one = len(stuck) == 1
        raise ConditionNotMet("%d %s no other node to go to, so %s on %s%s: %s" % (
            len(stuck), "primary has" if one else "primaries have", "it stays" if one else "they stay", args.node_id,
            "; it was not removed" if args.remove and not args.dry_run else "",
            "; ".join("%s: %s" % (s.get("shard_id"), s.get("reason")) for s in stuck[:10])
            + ("; ..." if len(stuck) > 10 else ""))).showing(result.data, result.view)
    if not args.remove or args.dry_run:
        return result
    if result.view == "move-report":
        note("drained %s: %s completed; removing it" % (args.node_id, words(len(result.data["completed"]), "move")))
    else:  # nothing was moved, so nothing was confirmed yet
        confirm_change(args, "remove node %s" % args.node_id, "node %s was not removed" % args.node_id,
                       "Remove node %s?" % args.node_id)
    held = [field(s, "shard_id") for s in client.list_shards(node_id=args.node_id)
            if args.node_id in holders(s)]
    with InFlight("the request to remove %s" % args.node_id, check_with(args)):
        removed = Result(client.remove_node(args.node_id), "node-removed")
    follow_replicas(client, args, held)
    return removed


def named_operation(name, action):
    # Return (its state, each move's last event, its records) for 'operations ACTION NAME'.
    if not name:
        raise InvalidInput("operations %s needs an operation's name (see 'cluster_cli.py operations')" % action)
    if not re.match(OPERATION_NAME, name):
        raise InvalidInput("%s is not an operation's name (such as rebalance-20261202-090000-3f2a)" % shown(name))
    journal = Journal(name)
    if not os.path.lexists(journal.path):
        raise InvalidInput("no operation %s in %s" % (name, os.path.dirname(journal.path)))
    records = journal.records()
    state, last = operation_state(records)
    return state, last, records


def operation_report(state, last, records):
    # Return an operation's report as its journal tells it, live or finished: each move where its last
    # event left it (sent and not ended: running).
    plan = as_dict(as_dict(records[0]).get("plan")) if records else {}
    report = {key: [] for key, _ in MOVE_RESULTS}
    ended = {"completed": "completed", "failed": "failed", "stalled": "stalled", "unknown": "unknown",
             "skipped": "skipped"}
    for move in as_list(plan.get("moves")):
        if not isinstance(move, dict):
            continue
        record = last.get(move.get("shard_id"), {})
        where = ended.get(record.get("event"), "running" if record.get("event") in ("sending", "started") else
                          "not_started")
        report[where].append(dict(move, **{k: record[k] for k in ("migration_id", "error") if record.get(k)}))
    return dict(report, kind=state["kind"], node_id=state["node_id"], verified=None, operation=state["operation"],
                state=state["state"])


@command("operations", option("action", nargs="?", choices=("list", "show", "throttle", "stop"), default="list",
                              help="list them (the default), show one's report, throttle a run, or stop it"),
         option("operation", nargs="?", metavar="OPERATION", help="the operation, as 'operations' lists it"),
         option("--max-concurrent", type=_at_least_one, metavar="N",
                help="with throttle: migrations in flight at once"),
         option("--max-per-node", type=_at_least_one, metavar="N",
                help="with throttle: migrations into or out of one node at once"),
         view="operations", local=True)
def cmd_operations(client, args):
    """List the rebalances and drains run from this machine, running and past, with their state;
    show one's report, or steer one that runs from another terminal.

    They are kept in $XDG_STATE_HOME/jadevectordb/operations (~/.local/state/...), one file each;
    a stopped one goes on with 'rebalance --resume' or 'drain-node --node-id ID --resume'.
    'throttle' changes a run's limits at its next scheduling round (a running migration is never
    cancelled) and is kept by --resume; 'stop' starts no new move, and the run ends with its report
    once those running have ended; 'show' prints a run's report as its journal has it.
    example: cluster_cli.py operations
             cluster_cli.py operations --format json | jq -r '.[] | select(.state != "completed") | .operation'
             cluster_cli.py operations throttle rebalance-20261202-090000-3f2a --max-concurrent 4
             cluster_cli.py operations stop rebalance-20261202-090000-3f2a
             cluster_cli.py operations show rebalance-20261202-090000-3f2a --format json
    """
    if args.action == "list":
        if args.operation or args.max_concurrent or args.max_per_node:
            raise InvalidInput("operations lists them all: an operation's name goes with show, throttle or stop")
    elif args.action == "show":
        return Result(operation_report(*named_operation(args.operation, "show")), "move-report")
    else:
        state, _, _ = named_operation(args.operation, args.action)
        if state["state"] in ("completed", "refused"):
            raise ClusterError("%s is %s: nothing to %s" % (args.operation, state["state"], args.action))
        if args.action == "throttle":
            limits = {k: getattr(args, k) for k in ("max_concurrent", "max_per_node") if getattr(args, k)}
            if not limits:
                raise InvalidInput("operations throttle needs --max-concurrent N, --max-per-node N or both")
            Journal(args.operation).add("throttle", **limits)
            said = ", ".join("%s %d" % ("--" + k.replace("_", "-"), v) for k, v in sorted(limits.items()))
            said += " from its next round" if state["state"] == "running" else ", kept for --resume"
        else:
            if state["state"] != "running":
                raise ClusterError("%s is not running (%s): nothing to stop" % (args.operation, state["state"]))
            Journal(args.operation).add("stop")
            said = "no new move starts; it ends with its report once those running have ended"
        return Result({"operation": args.operation, "said": said}, "steered")
    rows = [state for state, _, _ in all_operations()]
    return Result(rows, None, None if rows else "no operations in %s" % os.path.join(state_folder(),
                                                                                               "operations"))


@command("explain", option("--shard-id", param="shard_id", required=True, type=_id, help="ID of the shard"),
         view="explain")
def cmd_explain(client, args):
    """Say where a shard's primary could move and why not elsewhere, as a rebalance sees it.

    example: cluster_cli.py explain --shard-id shard-07
    """
    return Result(client.explain_shard(args.shard_id))


# -- the health report: each indicator judged from one read of the cluster ----------------------

# Worst last: a report is as bad as its worst indicator, and never GREEN beside an UNKNOWN.
REPORT_STATUSES = words_in("GREEN UNKNOWN YELLOW RED")
DEFAULT_MAX_AFFECTED = 20
# What a report reads (ClusterCLI's methods), concurrently, and the command that shows each.
REPORT_READS = {"cluster_status": "status", "list_nodes": "nodes", "list_shards": "shards", "metrics": "metrics",
                "diagnostics": "diagnostics"}
MIGRATIONS_READ = 50  # the most migrating shards a report asks about (their latest migration, one GET each)
ERRORS_WITHIN = 900.0  # seconds before the cluster's generated_at: the errors a report counts
# A node's use at which its resource turns the report YELLOW, and RED (None: never RED).
RESOURCE_LIMITS = (("disk", "disk_usage", 85.0, 95.0), ("memory", "memory_usage", 90.0, 97.0),
                   ("cpu", "cpu_usage", 90.0, None))


def epoch_of(text):
    # Seconds since 1970 of an ISO 8601 UTC time ('2026-11-26T05:00:00Z'), or None.
    import calendar
    try:
        return float(calendar.timegm(time.strptime(str(text)[:19], "%Y-%m-%dT%H:%M:%S")))
    except ValueError:
        return None


def finding(status, id, cause, action, nodes=(), shards=()):
    # Return a diagnosis: its stable id, its cause, the command line to run, what it is about.
    return {"status": status, "id": id, "cause": cause, "action": action,
            "affected": {"nodes": sorted(set(map(str, nodes))), "shards": sorted(set(map(str, shards)))}}


def worst_of(found):
    return max((f["status"] for f in found), key=REPORT_STATUSES.index, default="GREEN")


def judge_master(reads):
    master = field(reads["cluster_status"], "master_node")
    node = nodes_by_id(reads.get("list_nodes") or []).get(master, {})
    status = field(node, "status")
    if not master:
        return "RED", "the cluster names no master", [finding(
            "RED", "master.none", "the cluster answered with no master_node", "diagnostics")]
    if status in DOWN_NODE_STATUSES or status == "DEGRADED":
        level = "RED" if status in DOWN_NODE_STATUSES else "YELLOW"
        return level, "master %s is %s" % (master, status), [finding(
            level, "master." + status.lower(), "the master's own node is %s" % status,
            "node-health --node-id %s" % master, [master])]
    return "GREEN", "master %s answers" % master, []


def judge_nodes(reads):
    nodes = reads["list_nodes"]
    down, degraded = [], []
    for node in nodes:
        if field(node, "status") in DOWN_NODE_STATUSES + ("DEGRADED",):
            (degraded if field(node, "status") == "DEGRADED" else down).append(field(node, "node_id"))
    if not down and not degraded:
        return "GREEN", "%s, none down" % words(len(nodes), "node"), []
    found = []
    if down:
        found.append(finding("RED" if 2 * len(down) >= len(nodes) else "YELLOW", "nodes.unreachable",
                             "%s stopped answering heartbeats" % words(len(down), "node"),
                             "node-health --node-id %s" % down[0] if len(down) == 1 else "nodes --status UNREACHABLE",
                             down))
    if degraded:
        found.append(finding("YELLOW", "nodes.degraded", "%s report failing checks" % words(len(degraded), "node"),
                             "node-health --node-id %s" % degraded[0] if len(degraded) == 1 else
                             "nodes --status DEGRADED", degraded))
    said = ["%s unreachable" % words(len(down), "node")] if down else []
    said += ["%s degraded" % (words(len(degraded), "node") if not down else len(degraded))] if degraded else []
    return worst_of(found), ", ".join(said), found


def judge_shard_availability(reads):
    shards, ids, holding = reads["list_shards"], [], []
    for shard in shards:
        if field(shard, "status") == "OFFLINE":
            ids.append(field(shard, "shard_id"))
            holding += holders(shard)
    if not ids:
        return "GREEN", "%s, each with a live copy" % words(len(shards), "shard"), []
    return "RED", "%s offline" % words(len(ids), "shard"), [finding(
        "RED", "shards.offline", "no node holding a copy of them answers", "shards --status OFFLINE", holding, ids)]


def judge_replication(reads):
    shards = reads["list_shards"]
    factor = number(field(reads.get("cluster_status"), "replication_factor"))
    listed = set(map(str, as_list(field(field(reads.get("diagnostics"), "replication"), "under_replicated_shards"))))
    short, holding = [], set()
    for shard in shards:
        if field(shard, "status") != "OFFLINE" and (field(shard, "status") == "UNDER_REPLICATED" or field(
                shard, "shard_id") in listed or (factor and len(holders(shard)) < factor)):
            short.append(field(shard, "shard_id"))
            holding.update(holders(shard))
    if not short:
        return "GREEN", "every shard has its copies" + (" (%g)" % factor if factor else ""), []
    nodes = reads.get("list_nodes") or []
    down = sorted({field(n, "node_id") for n in nodes if field(n, "status") in DOWN_NODE_STATUSES} & holding)
    cause = ("copies of them are on unreachable %s" % ", ".join(down)) if down else \
        "copies were lost and are not yet made again"
    action = "remove-node --node-id %s --dry-run" % down[0] if len(down) == 1 else "shards --status UNDER_REPLICATED"
    return "YELLOW", "%s under-replicated" % words(len(short), "shard"), [finding(
        "YELLOW", "replication.under_replicated", cause, action, down, short)]


def judge_migrations(reads):
    migrating = [field(s, "shard_id") for s in reads["list_shards"] if field(s, "status") == "MIGRATING"]
    now = epoch_of(field(reads.get("diagnostics"), "generated_at")) or time.time()
    found, tally = [], {"failed": 0, "stalled": 0}
    for shard_id, shard in sorted(as_dict(reads.get("migrations")).items()):
        migration = field(shard, "migration")
        started = epoch_of(field(migration, "started_at"))
        if field(migration, "status") == "FAILED":
            tally["failed"] += 1
            found.append(finding("YELLOW", "migrations.failed", "the migration of %s failed: %s" % (
                shard_id, fmt_text(field(migration, "error")) or "no reason given"),
                "shard-status --shard-id %s" % shard_id, [field(migration, "target_node")], [shard_id]))
        elif field(migration, "status") in RUNNING_MIGRATION and not number(field(migration, "progress")) and \
                started is not None and now - started >= DEFAULT_STALL_TIMEOUT:
            tally["stalled"] += 1
            found.append(finding("YELLOW", "migrations.stalled", "the migration of %s has made no progress in %s" % (
                shard_id, fmt_duration(now - started)), "shard-status --shard-id %s" % shard_id,
                [field(migration, "source_node"), field(migration, "target_node")], [shard_id]))
    last = reads.get("operation")
    if last and last["state"] not in ("completed", "refused", "running"):
        found.append(finding("YELLOW", "migrations.operation_unfinished", "%s ended %s: %d of %s done" % (
            last["operation"], last["state"], last["completed"], words(last["moves"], "move")),
            "operations show %s" % last["operation"], [last["node_id"]] if last["node_id"] else []))
    if found:
        return "YELLOW", ", ".join(["%s %s" % (words(n, "migration"), what) for what, n in tally.items() if n]) or \
            found[-1]["cause"], found
    return "GREEN", "%s running" % words(len(migrating), "migration") if migrating else "no migration running", []


def judge_balance(reads):
    counts = {field(n, "node_id"): 0 for n in reads["list_nodes"] if field(n, "status") == "HEALTHY"}
    for shard in reads["list_shards"]:
        if field(shard, "primary_node") in counts:
            counts[field(shard, "primary_node")] += 1
    if len(counts) < 2:
        return "GREEN", "%s to balance over" % words(len(counts), "healthy node"), []
    most, least = max(sorted(counts, reverse=True), key=counts.get), min(sorted(counts), key=counts.get)
    even = sum(counts.values()) / len(counts)
    if counts[most] - counts[least] <= 1 or counts[most] <= 1.25 * even:
        return "GREEN", "primaries even: %d to %d per node" % (counts[least], counts[most]), []
    symptom = "primaries uneven: %d on %s, %d on %s" % (counts[most], most, counts[least], least)
    return "YELLOW", symptom, [finding("YELLOW", "balance.uneven_primaries", symptom + " (%.1f each when even)"
                                       % even, "rebalance --dry-run",
                                       [n for n, c in counts.items() if abs(c - even) > 1])]


def judge_resources(reads):
    usage = {k: as_dict(v) for k, v in as_dict(field(reads.get("metrics"), "nodes")).items()}
    for node in reads.get("list_nodes") or []:
        if field(node, "status") in DOWN_NODE_STATUSES:  # a node that does not answer reports nothing
            usage.pop(field(node, "node_id"), None)
        else:
            usage[field(node, "node_id")] = dict(usage.get(field(node, "node_id"), {}), **as_dict(node))
    found, said = [], []
    for name, key, yellow, red in RESOURCE_LIMITS:
        over = {n: number(field(u, key)) for n, u in usage.items() if (number(field(u, key)) or 0) >= yellow}
        if over:
            top = max(sorted(over, reverse=True), key=over.get)
            said.append("%s %g%% on %s" % (name, over[top], top) if len(over) == 1 else
                        "%s %g%% or more on %s" % (name, yellow, words(len(over), "node")))
            found.append(finding("RED" if red is not None and over[top] >= red else "YELLOW", "resources." + name,
                                 "%s at %g%% on %s, over the %g%% limit" % (name, over[top], top, yellow),
                                 "node-health --node-id %s" % top, over))
    if not found:
        return "GREEN", "cpu, memory and disk below their limits on %s" % words(len(usage), "node"), []
    return worst_of(found), ", ".join(said), found


def judge_errors(reads):
    diagnostics = reads["diagnostics"]
    now = epoch_of(field(diagnostics, "generated_at")) or time.time()
    recent = [e for e in as_list(field(diagnostics, "errors"))
              if str(field(e, "severity")).upper() in ("ERROR", "CRITICAL", "FATAL")
              and now - (epoch_of(field(e, "timestamp")) or now) <= ERRORS_WITHIN]
    within = "in the last %d minutes" % (ERRORS_WITHIN // 60)
    if not recent:
        return "GREEN", "no errors %s" % within, []
    return "YELLOW", "%s %s" % (words(len(recent), "error"), within), [finding(
        "YELLOW", "errors.recent", "the latest: %s" % fmt_text(field(recent[-1], "message")), "diagnostics",
        [field(e, "node_id") for e in recent if field(e, "node_id")])]


# Each indicator: its judge, the reads it needs (any one of them, for resources), its impact when not GREEN
# (severity 1 the worst; the areas affected), and what that impact is.
INDICATORS = (
    ("master", judge_master, ("cluster_status",), 1, ("operations",),
     "No node can be added, removed or moved without a master."),
    ("nodes", judge_nodes, ("list_nodes",), 2, ("search", "ingest"),
     "Shards on the nodes named are served by fewer copies."),
    ("shard_availability", judge_shard_availability, ("list_shards",), 1, words_in("search ingest backup"),
     "The offline shards' vectors can be neither searched nor written."),
    ("replication", judge_replication, ("list_shards",), 2, ("backup",),
     "One more node lost can lose the vectors of these shards."),
    ("migrations", judge_migrations, ("list_shards",), 3, ("operations",), "A shard move did not end as planned."),
    ("balance", judge_balance, ("list_nodes", "list_shards"), 3, ("search", "ingest"),
     "The busiest nodes answer more than their share of queries and writes."),
    ("resources", judge_resources, ("list_nodes", "metrics"), 2, ("search", "ingest"),
     "A node out of disk or memory stops taking writes, then answering."),
    ("errors", judge_errors, ("diagnostics",), 3, ("operations",), "The cluster logged errors to read."),
)


def judge(reads, prog=DEFAULT_PROG, max_affected=DEFAULT_MAX_AFFECTED):
    # Return the health report of what a cluster answered: reads maps each of REPORT_READS (and
    # "migrations", "operation") to its answer, or to the ClusterError that stopped it.
    failed, answered = {}, {}
    for name, value in reads.items():
        (failed if isinstance(value, ClusterError) else answered)[name] = value
    indicators, worst = {}, "GREEN"
    for name, judged, needs, severity, areas, impact in INDICATORS:
        missing = [read for read in needs if read in failed]
        if name == "resources" and len(missing) < len(needs):
            missing = []  # either read will do
        if missing:
            error = failed[missing[0]]
            status, symptom, found = "UNKNOWN", "could not read %s: %s" % (REPORT_READS[missing[0]], error.message), [
                finding("UNKNOWN", "read.failed", str(error), "doctor")]
        else:
            status, symptom, found = judged(answered)
        for diagnosis in found:
            affected = diagnosis["affected"]
            cut = False
            for kind in ("nodes", "shards"):
                affected[kind + "_total"] = len(affected[kind])
                cut |= len(affected[kind]) > max_affected
                affected[kind] = affected[kind][:max_affected]
            affected["truncated"] = cut
            del diagnosis["status"]
            diagnosis["action"] = prog + " " + diagnosis["action"]
        indicators[name] = {"status": status, "symptom": symptom, "impacts": [] if status == "GREEN" else [
            {"severity": severity, "areas": list(areas), "description": impact}], "diagnoses": found}
        worst = max(worst, status, key=REPORT_STATUSES.index)
    return {"status": worst, "cluster": field(reads.get("cluster_status"), "cluster_name"),
            "indicators": indicators}


def operations_of(client, reads):
    # This machine's operations on the cluster read (all_operations()'s), when its status and nodes were read.
    if isinstance(reads["cluster_status"], ClusterError) or isinstance(reads["list_nodes"], ClusterError):
        return []
    identity = client.identity(reads["list_nodes"], reads["cluster_status"])
    return [found for found in all_operations() if found[0]["cluster"] == identity]


def quote_id(text):
    # An ID as one file name: '/' and every byte a name should not hold %-encoded ('..' becomes '...json').
    from urllib.parse import quote
    return quote(text, safe="")


def endpoint_of(client, method, ids):
    route = ENDPOINTS[method][1].format(*ids)
    return "GET " + (client.api_prefix + route if route.startswith("/cluster") else route)


def wanted_reads(bundle, reads=None):
    # [(artifact path, client method, its ID)]: what a report reads (a bundle /health too); once those
    # are in `reads`, each node's health for a bundle, and the status of each shard MIGRATING (for a
    # bundle, each not HEALTHY, the migrating first), at most MIGRATIONS_READ.
    if reads is None:
        return [("api/%s.json" % REPORT_READS.get(name, name), name, ())
                for name in ("health",) * bundle + tuple(REPORT_READS)]
    nodes, shards = (as_list(reads[name]) for name in ("list_nodes", "list_shards"))
    ids = [fmt_text(field(node, "node_id")) for node in nodes] if bundle else []
    wanted = [("api/node_health/%s.json" % quote_id(i), "node_health", (i,)) for i in ids]
    shards = [shard for shard in shards if field(shard, "status") == "MIGRATING" or
              bundle and field(shard, "status") != "HEALTHY"]
    shards.sort(key=lambda shard: field(shard, "status") != "MIGRATING")
    ids = [fmt_text(field(shard, "shard_id")) for shard in shards[:MIGRATIONS_READ]]
    return wanted + [("api/shard_status/%s.json" % quote_id(i), "shard_status", (i,)) for i in ids]


def as_done(work, items, concurrency):
    # Yield (index, work(item)) for each of `items` as it ends, `concurrency` at a time; work's own
    # error is raised here. Daemon threads: Ctrl-C or SIGTERM ends the command at once, not after a
    # hung request's timeout (a pool's threads are waited for, by the pool and again at exit).
    import queue
    import threading
    # SimpleQueue: its wait is C code, where Ctrl-C is raised at once (a Condition's wait is put off, see stop)
    ended, pending = queue.SimpleQueue(), enumerate(items)  # one iterator: each next() is one worker's, whole

    def worker():
        for index, item in pending:
            try:
                ended.put((index, work(item), None))
            except Exception as exc:
                ended.put((index, None, exc))

    for _ in range(min(concurrency, len(items))):
        threading.Thread(target=worker, daemon=True).start()
    for _ in items:
        index, answer, failed = ended.get()
        if failed:
            raise failed
        yield index, answer


def collect(client, wanted, concurrency, deadline):
    # Ask for each of `wanted`, `concurrency` at a time, each within --timeout and all before `deadline`
    # (time.monotonic()): {method, or (method, ID): the answer or its ClusterError}, and for each a
    # manifest entry with the body as it came.

    def one(item):
        path, method, ids = item
        started = time.monotonic()
        with client._transport.captured() as bodies, client._transport.bounded(deadline):
            try:
                answer = getattr(client, method)(*ids)
            except ClusterError as exc:
                answer = exc
        status, body = bodies[-1] if bodies else (getattr(answer, "status_code", None), b"")
        failed = isinstance(answer, ClusterError)
        entry = {"path": path, "endpoint": endpoint_of(client, method, ids),
                 "status": "ok" if not failed else "timeout" if "no complete answer" in answer.message else "error",
                 "http_status": status, "bytes": len(body), "seconds": round(time.monotonic() - started, 3),
                 "error": str(answer) if failed else None}
        return (method,) + ids if ids else method, answer, (entry, body)

    done = [None] * len(wanted)
    for index, answer in as_done(one, wanted, concurrency):
        done[index] = answer
    return {key: answer for key, answer, _ in done}, [collected for _, _, collected in done]


def health_reads(client, deadline, bundle=False, concurrency=8):
    # Read what a report judges (and what a bundle keeps), `concurrency` at a time, each within
    # --timeout and all before `deadline`: the reads for judge(), with the latest migration of each
    # migrating shard and this machine's last operation on the cluster; this machine's operations on
    # it; and for a manifest what was asked, [(entry, the body as it came)].
    reads, collected = collect(client, wanted_reads(bundle), concurrency, deadline)
    more, collected_more = collect(client, wanted_reads(bundle, reads), concurrency, deadline)
    migrating = {fmt_text(field(shard, "shard_id")) for shard in as_list(reads["list_shards"])
                 if field(shard, "status") == "MIGRATING"}
    reads["migrations"] = {key[1]: answer for key, answer in more.items()
                           if key[0] == "shard_status" and key[1] in migrating and not isinstance(answer, ClusterError)}
    operations = operations_of(client, reads)
    reads["operation"] = operations[-1][0] if operations else None
    return reads, operations, collected + collected_more


def changes_since(report, before, path):
    # Return the report with only the indicators whose status, symptom or diagnoses differ from
    # those of `before` (a report saved with --format json), each with the status it `was`.
    was = field(before, "indicators")
    if not isinstance(was, dict):
        raise InvalidInput("--since: %s is not a saved report ('report --format json')" % shown(path))

    def said(indicator):
        return (field(indicator, "status"), field(indicator, "symptom"),
                sorted(str(field(d, "id")) for d in as_list(field(indicator, "diagnoses"))))
    changed = {name: dict(now, was=field(was.get(name), "status")) for name, now in report["indicators"].items()
               if said(now) != said(was.get(name))}
    return dict(report, indicators=changed, since=path)


def report_summary(report):
    # Return a report as the table and compact show it: a row per indicator, then a row per diagnosis.
    rows, actions, symptoms = [], [], []
    for name, indicator in as_dict(field(report, "indicators")).items():
        was = field(indicator, "was")
        status = field(indicator, "status")
        rows.append({"indicator": name, "status": status, "level": REPORT_STATUSES.index(status)
                     if status in REPORT_STATUSES else None, "symptom": fmt_text(
            field(indicator, "symptom")) + (" (was %s)" % was if was else " (new)" if "was" in as_dict(indicator)
                                            else "")})
        symptoms += [rows[-1]["symptom"]] if status != "GREEN" else []
        for diagnosis in as_list(field(indicator, "diagnoses")):
            affected = as_dict(field(diagnosis, "affected"))
            named = list(map(fmt_text, as_list(affected.get("nodes")) + as_list(affected.get("shards"))))[:3]
            more = (number(affected.get("nodes_total")) or 0) + (number(affected.get("shards_total")) or 0) - len(named)
            actions.append({"action": field(diagnosis, "action"), "cause": field(diagnosis, "cause"),
                            "id": field(diagnosis, "id"),
                            "affected": ", ".join(named) + (" (+%d more)" % more if more > 0 else "")})
    symptoms = symptoms or (["nothing changed since %s" % field(report, "since")] if field(report, "since") else
                            ["all %s GREEN" % words(len(rows), "indicator")])
    return dict(as_dict(report), indicator_rows=rows, action_rows=actions,
                symptoms=" | " + " | ".join(symptoms))


VIEWS["report"] = View(
    fields=words_in("status cluster indicators"), title="Cluster Health Report[ of {cluster}]",
    rows=(STATUS,), prepare=report_summary, compact=("{status:status}{symptoms}",),
    sections=(Section("Indicators", "grid", shown_as("indicator, status, symptom"), list_at("indicator_rows")),
              Section("Actions", "grid", shown_as("action, cause, affected, id:Diagnosis"),
                      list_at("action_rows"))),
    samples=(Sample("jadevectordb_health_indicator_status", "The indicator's status: 0 GREEN, 1 UNKNOWN, 2 YELLOW, "
                    "3 RED", "level", (("indicator", "indicator"),),
                    lambda report: report_summary(report)["indicator_rows"]),))


@command("report", option("--max-affected", type=_non_negative_int, default=DEFAULT_MAX_AFFECTED, metavar="N",
             help="the most nodes and shards a diagnosis lists (default %d; the totals are always given)"
             % DEFAULT_MAX_AFFECTED),
         option("--since", metavar="FILE", help="show only what changed since this report (saved with "
                "'report --format json')"),
         view="report", exits={4: "the cluster is YELLOW or RED", 3: "the cluster, or part of it, could not be read "
                                                                     "(and nothing is YELLOW or RED)"})
def cmd_report(client, args):
    """Judge the cluster's health: master, nodes, shard availability, replication, migrations,
    balance, resources and errors, each GREEN, YELLOW, RED or UNKNOWN (not read), with its symptom
    and, when not GREEN, what it affects and the command to run next. It reads status, nodes,
    shards, metrics and diagnostics at once, all within --timeout, and this machine's journals.

    example: cluster_cli.py report
             cluster_cli.py report --format json > before.json; cluster_cli.py report --since before.json
             cluster_cli.py report --format compact      (one line: YELLOW | 1 node unreachable | ...)
    """
    before = read_json_file(args.since, "--since", client.max_response_size, client.timeout) if args.since else None
    reads, _, _ = health_reads(client, time.monotonic() + client.timeout, concurrency=len(REPORT_READS))
    errors = [reads[name] for name in REPORT_READS if isinstance(reads[name], ClusterError)]
    if len(errors) == len(REPORT_READS):
        raise errors[0]
    report = judge(reads, PROG, args.max_affected)
    if before is not None:
        report = changes_since(report, before, args.since)
    said = report_summary(report)["symptoms"][3:]
    if report["status"] in ("YELLOW", "RED"):
        raise ConditionNotMet("the cluster is %s: %s" % (report["status"], said)).showing(report, "report")
    if report["status"] == "UNKNOWN":
        raise PartlyRead("part of the cluster could not be read: %s" % said).showing(report, "report")
    return Result(report)


# -- doctor: can this CLI talk to this cluster, and if not, why ----------------------------------

CLOCK_OFFSET_WARN = 30.0  # seconds between this machine's clock and the server's Date before a warning
SLOW_ANSWER = 1.0  # seconds: a status answer slower than this is worth a warning
CERT_EXPIRY_WARN = 14  # days


def tls_check(host, port, verify, timeout):
    # Shake hands as the client would (its CA bundle, or none with --insecure); say how long the
    # certificate has left.
    import socket
    import ssl
    context = ssl.create_default_context(cafile=verify if isinstance(verify, str) else None)
    if verify is False:
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw, \
                context.wrap_socket(raw, server_hostname=host) as tls:
            certificate = tls.getpeercert()
    except ssl.SSLError as exc:
        return "FAIL", "the handshake failed: %s" % (getattr(exc, "verify_message", None) or exc.reason or exc)
    except OSError as exc:
        return "FAIL", "the handshake failed: %s" % (exc.strerror or exc)
    if not certificate:
        return "WARN", "verification is off (--insecure): the cluster's identity is not checked"
    days = int((ssl.cert_time_to_seconds(certificate["notAfter"]) - time.time()) // 86400)
    return "WARN" if days < CERT_EXPIRY_WARN else "PASS", "the certificate is verified and expires in %d days" % days


def doctor_checks(client, resolved):
    # Check each step from the settings to an answer of the cluster API, master by master.
    import socket
    from urllib.parse import urlsplit
    sources = resolved.sources
    results = []

    def add(check, result, message, where=""):
        results.append({"check": check, "master": where, "result": result, "message": message})

    add("settings", "PASS", "address %s from %s; %s" % (
        ",".join(map(hide_credentials, client.base_urls)), sources["address"],
        "API key from %s" % sources["api_key"] if "api_key" in sources else "no API key"))
    transport = client._transport
    for base in client.base_urls:
        parts, proxy = urlsplit(base), client.proxy_for(base)
        hop = urlsplit(proxy) if proxy else parts  # the first hop is the one this machine must reach
        port = hop.port or {"https": 443, "http": 80}.get(hop.scheme, 1080)
        where, via = hide_credentials(base), " (the proxy %s)" % hide_credentials(proxy) if proxy else ""
        try:
            found = sorted({info[4][0] for info in socket.getaddrinfo(hop.hostname, port, type=socket.SOCK_STREAM)})
            add("name", "PASS", "%s is %s%s" % (hop.hostname, ", ".join(found), via), where)
        except (OSError, UnicodeError) as exc:
            add("name", "FAIL", "%s does not resolve: %s%s" % (hop.hostname, exc, via), where)
            continue
        started = time.monotonic()
        try:
            socket.create_connection((hop.hostname, port), timeout=client.timeout).close()
            add("tcp", "PASS", "connected to port %d in %.0f ms%s" % (port, 1000 * (time.monotonic() - started), via),
                where)
        except OSError as exc:
            add("tcp", "FAIL", "cannot connect to port %d: %s%s" % (port, exc.strerror or exc, via), where)
            continue
        if parts.scheme == "https" and not proxy:  # through a proxy, the handshake is /health's
            add("tls", *tls_check(parts.hostname, port, transport._verify, client.timeout), where=where)
        deadline = time.monotonic() + client.timeout

        def get(path, auth=transport._auth, base=base, deadline=deadline):
            transport._auth, kept = auth, transport._auth
            asked = time.monotonic()
            try:
                response, content = transport._follow("GET", base + path, None, None, deadline, 1)
                return response, content, time.monotonic() - asked
            except ClusterError as exc:
                return None, exc, time.monotonic() - asked
            finally:
                transport._auth = kept

        response, content, _ = get("/health")
        if response is None:
            add("health", "FAIL", "/health: %s" % content.message, where)
            continue
        try:
            answer = parse_json(content.decode("utf-8", "replace"), ERROR_BODY_LIMIT)
        except (ValueError, RecursionError, ClusterError):  # not JSON: no version to say
            answer = {}
        ok = response.status_code == 200
        add("health", "PASS" if ok else "FAIL", "/health: HTTP %d%s" % (
            response.status_code, ", %s, version %s" % (fmt_text(field(answer, "status")), fmt_text(
                field(answer, "version")) or "not said") if ok else ""), where)
        date = response.headers.get("Date")
        if date:
            from email.utils import parsedate_to_datetime
            offset = parsedate_to_datetime(date).timestamp() - time.time()
            add("clock", "WARN" if abs(offset) > CLOCK_OFFSET_WARN else "PASS", "the server's clock is %.0f s %s "
                "this machine's" % (abs(offset), "ahead of" if offset > 0 else "behind"), where)
        statuses = {}
        for prefix in dict.fromkeys((client.api_prefix, DIALECT_API_PREFIX, DEFAULT_API_PREFIX)):
            response, content, took = get(prefix + "/cluster/status")
            statuses[prefix] = response.status_code if response is not None else content.message
            if prefix == client.api_prefix:
                seconds_taken = took
        used, other = client.api_prefix, DEFAULT_API_PREFIX if client.api_prefix == DIALECT_API_PREFIX else \
            DIALECT_API_PREFIX
        said = {200: "answers", 404: "is not served (HTTP 404)", 501: "is not implemented by this server (HTTP 501)",
                401: "needs an API key (HTTP 401)", 403: "refuses this key (HTTP 403)"}
        for prefix in (used, other):
            code = statuses[prefix]
            text = "the cluster API under %s %s" % (prefix, said.get(code, "answered %s" % (
                "HTTP %s" % code if isinstance(code, int) else code)))
            if prefix == used:
                hint = ("; set --api-prefix %s" % other) if code == 404 and statuses[other] in (200, 401, 403) else ""
                add("api", "PASS" if code in (200, 401, 403) else "FAIL", text + hint, where)
            else:
                add("api-other", "PASS", text, where)
        if statuses[used] in (200, 401, 403):
            response, _, _ = get(used + "/cluster/status", auth=None)
            unkeyed = response.status_code if response is not None else None
            if transport._auth is None:
                add("auth", "PASS" if unkeyed == 200 else "FAIL", "the cluster answers without a key" if unkeyed == 200
                    else "the cluster needs an API key (HTTP %s): set --api-key or %s" % (unkeyed, ENV_API_KEY), where)
            else:
                keyed = statuses[used]
                add("auth", "PASS" if keyed == 200 else "FAIL", ("the key is taken" if keyed == 200 else
                    "the key is refused (HTTP %d)" % keyed) + ("; the cluster also answers without one"
                                                               if unkeyed == 200 else ""), where)
            if statuses[used] == 200:
                add("answer time", "WARN" if seconds_taken > SLOW_ANSWER else "PASS",
                    "status answered in %.0f ms" % (1000 * seconds_taken), where)
    return results


VIEWS["doctor"] = View(columns=shown_as("check, result, master, message"))


@command("doctor", view="doctor", exits={1: "a check failed", 3: "no master answers"})
def cmd_doctor(client, args):
    """Check whether this CLI can talk to the cluster, step by step, and if not, why: where the
    settings came from, name resolution, TCP and TLS to each master, /health, the cluster API under
    the prefix in use and the other one, the API key (never shown), the clock and the answer time.

    example: cluster_cli.py doctor
             cluster_cli.py --url https://jade.example:8443 doctor --format json
    """
    results = doctor_checks(client, args.resolved)
    failed, answered = [], False
    for result in results:
        answered = answered or (result["check"], result["result"]) == ("health", "PASS")
        failed += [result] if result["result"] == "FAIL" else []
    if not answered:
        raise PartlyRead("no master answers: %s" % "; ".join(["%s: %s" % (r["master"], r["message"]) for r in failed])
                         ).showing(results, "doctor")
    if failed:
        error = ClusterError("%s failed: %s" % (words(len(failed), "check"), "; ".join([r["message"] for r in failed])))
        error.answers = True
        raise error.showing(results, "doctor")
    return Result(results)


# -- bundle: one archive for a support ticket ----------------------------------------------------


def address_hider(hosts, texts):
    # Return text -> text with the host names given and every IP address in `texts` replaced, where
    # each stands alone, by 'host-N': numbered in sorted order, one host has one pseudonym everywhere.
    import ipaddress
    found = set(filter(None, hosts))
    for text in texts:
        for candidate in re.findall(r"(?<![\w.:])(?:\d{1,3}(?:\.\d{1,3}){3}|[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7})"
                                    r"(?![\w:])", text):
            try:
                found.add(str(ipaddress.ip_address(candidate)) and candidate)
            except ValueError:
                pass  # a time (12:30:45) or a version
    names = {name: "host-%d" % n for n, name in enumerate(sorted(found), 1)}
    pattern = re.compile(r"(?<![\w.-])(%s)(?![\w-])" % "|".join(map(re.escape, sorted(names, key=len, reverse=True))))
    return lambda text: pattern.sub(lambda match: names[match.group(1)], text)


def tar_gz(files):
    # A .tar.gz of {path: text}, each file mode 0600 and dated now.
    import io
    import tarfile
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for path, text in files.items():
            data = text.encode("utf-8", "surrogateescape")
            info = tarfile.TarInfo(path)
            info.size, info.mode, info.mtime = len(data), 0o600, int(time.time())
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


VIEWS["bundle"] = View(columns=shown_as("path, endpoint, status, http_status:HTTP") + (
    labelled("Bytes", "bytes", fmt=fmt_count), *shown_as("seconds, error")))


VIEWS["bundle-list"] = View(columns=VIEWS["bundle"].columns[:2])


@command("bundle", switch("--list", "print what would be collected, and send nothing"),
         switch("--redact-addresses", "replace host names and IP addresses by host-1, "
                "host-2, ... everywhere in the archive"),
         option("--concurrency", type=_at_least_one, default=DEFAULT_CONCURRENCY, metavar="N",
                help="the most requests at once (default %d)" % DEFAULT_CONCURRENCY),
         option("--deadline", type=_seconds, default=DEFAULT_DEADLINE, metavar="SECONDS",
                help="the most the whole collection may take (default %g); each request gets --timeout"
                % DEFAULT_DEADLINE),
         view="bundle", writes_output=True,
         exits={4: "the archive is written, but part of the cluster could not be read",
                3: "nothing could be read (the archive holds what failed, and the settings)"})
def cmd_bundle(client, args):
    """Collect one .tar.gz for a support ticket: every GET endpoint, each node's health, the status
    of each shard not HEALTHY, the health report, this CLI's version and settings (secrets removed)
    and this machine's journals of the cluster. Its MANIFEST.json lists each file with where it came
    from and whether it was read ("ok", "error", "timeout"). The archive (--output FILE; by default
    jadevectordb-bundle-CLUSTER-TIME.tar.gz here) is written whole or not at all, mode 0600; the
    manifest is printed. The API key is in no file, in any form.

    example: cluster_cli.py bundle
             cluster_cli.py bundle --output ticket-4711.tar.gz --redact-addresses --timeout 5
    """
    if args.list:
        listed = wanted_reads(True) + [("api/node_health/NODE_ID.json", "node_health", ("NODE_ID",)),
                                    ("api/shard_status/SHARD_ID.json", "shard_status", ("SHARD_ID",))]
        return Result([{"path": path, "endpoint": endpoint_of(client, method, ids)} for path, method, ids in listed],
                      "bundle-list")
    # Where the archive goes is checked now, not after minutes of reading (a FIFO or device is written in place).
    folder = os.path.dirname(os.path.abspath(args.archive)) if args.archive else os.getcwd()
    if (not args.archive or not os.path.exists(args.archive) or os.path.isfile(args.archive)) and \
            not os.access(folder, os.W_OK):
        raise OutputError("cannot write %s: %s" % (shown(args.archive or folder), "its folder is not writable"
                                                   if os.path.isdir(folder) else "no such folder"))
    reads, operations, collected = health_reads(client, time.monotonic() + args.deadline, True, args.concurrency)
    manifest = [entry for entry, _ in collected]
    files = {entry["path"]: body.decode("utf-8", "replace") for entry, body in collected if body}
    for state, _, records in operations:
        files["journals/%s.jsonl" % quote_id(state["operation"] or "unnamed")] = "".join(
            to_json(record) + "\n" for record in records)
    missed = [entry for entry in manifest if entry["status"] != "ok"]
    if len(missed) < len(manifest):
        files["report.json"] = to_json(judge(reads, PROG), 2)
    files["cli.json"] = to_json({"cli_version": __version__, "python": sys.version.split()[0],
                                 "platform": sys.platform, "api_prefix": client.api_prefix,
                                 "api_key": "set (not shown)" if args.resolved.get("api_key") else None,
                                 "settings": {k: v for k, v in args.resolved.items() if k != "api_key"},
                                 "sources": args.resolved.sources}, 2)
    files["MANIFEST.json"] = to_json(manifest, 2)
    from urllib.parse import urlsplit
    hosts = [urlsplit(url).hostname for url in client.base_urls]
    hosts += [fmt_text(field(node, "address")).rpartition(":")[0].strip("[]") for node in as_list(reads["list_nodes"])]
    hide = address_hider(hosts, list(files.values()) + list(files)) if args.redact_addresses else str
    archive = args.archive or "jadevectordb-bundle-%s-%s.tar.gz" % (re.sub(r"[^\w.-]", "_", hide(fmt_text(
        field(reads["cluster_status"], "cluster_name") or hosts[0]))), time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()))
    data = tar_gz({hide(path): redact(hide(text)) for path, text in files.items()})
    with written_to(archive, mode=0o600):
        sys.stdout.buffer.write(data)
    if is_tty(sys.stderr):  # said to a person; a script names the file with --output
        note("wrote %s: %s, %s" % (archive, words(len(files), "file"), fmt_bytes(len(data))))
    for entry in manifest:  # as the archive's manifest says it
        for key in ("path", "endpoint", "error"):
            entry[key] = entry[key] and redact(hide(entry[key]))
    if len(missed) == len(manifest):
        raise PartlyRead("nothing could be read: %s" % missed[0]["error"]).showing(manifest, "bundle")
    if missed:
        raise ConditionNotMet("%s not collected: %s" % (words(len(missed), "artifact"), "; ".join(
            "%s %s" % (entry["path"], entry["status"]) for entry in missed))).showing(manifest, "bundle")
    return Result(manifest)


def toml_value(value):
    # A setting's value as TOML writes it (a JSON string is a TOML basic string).
    import json
    if isinstance(value, list):
        return "[%s]" % ", ".join(map(toml_value, value))
    if isinstance(value, float) and value.is_integer():  # timeout = 10, as a person writes it
        value = int(value)
    return ("true" if value else "false") if isinstance(value, bool) else json.dumps(value, ensure_ascii=False)


def reassigned(line, text):
    # Return the line 'KEY = VALUE  # comment' with text for its 'KEY = VALUE': indentation and comment kept.
    match = re.match(r"(\s*)[^=]*=\s*(\"(?:[^\"\\]|\\.)*\"|'[^']*'|\[[^\]]*\]|[^\s#]+)(.*)", line, re.S)
    return match.group(1) + text + match.group(3)


def contexts_lines(config):
    # Return the contexts file as a command that rewrites it needs it: its lines, their line ending, what
    # it holds, where each table starts (and its end), and the line of default_context (or None).
    raw = read_file(config.path, MAX_CONFIG_SIZE)[0] if os.path.exists(config.path) else b""
    lines = raw.decode("utf-8").splitlines(keepends=True)
    tables = [i for i, line in enumerate(lines) if line.lstrip()[:1] == "["] + [len(lines)]
    return (lines, "\r\n" if lines and lines[0].endswith("\r\n") else "\n", _toml(config.path, "".join(lines)),
            tables, next((i for i in range(tables[0]) if re.match(r"\s*default_context\s*=", lines[i])), None))


def not_editable(config, what):
    # The error of a contexts file these commands cannot rewrite: `what` is written in a way they do not.
    return InvalidInput("contexts: %s cannot be edited here: %s; edit the file by hand" % (config.path, what))


def rewrite_contexts(config, lines, meant, what):
    # Write the contexts file's lines in its place (made 0600, in a folder made 0700, when there was none),
    # once they read back as `meant` and each setting passes the checks of a read.
    text = "".join(lines)
    if not meant.get("contexts", True):
        del meant["contexts"]
    try:
        same = _toml(config.path, text) == meant
    except InvalidInput:
        same = False
    if not same:
        raise not_editable(config, what)
    check_config(config.path, text, meant)
    os.makedirs(os.path.dirname(os.path.abspath(config.path)), mode=0o700, exist_ok=True)
    with written_to(config.path, mode=None if os.path.exists(config.path) else 0o600):
        sys.stdout.write(text)  # as it is: a file is not output, whose secrets are starred


def use_context(config, name):
    # Make NAME the file's default_context: its line rewritten (or one added before the first table),
    # every other byte as it was, comments included; the file replaced atomically, its mode kept.
    if name is None:
        raise InvalidInput("contexts use: which one? (%s)" % (", ".join(config.contexts) or no_file(config)))
    if name not in config.contexts:
        raise InvalidInput("contexts use: no context %s; the file has %s" % (
            shown(name), ", ".join(config.contexts) or "none") + ("" if not no_file(config) else
                                                                  " (%s)" % no_file(config)))
    lines, newline, meant, tables, default = contexts_lines(config)
    entry = "default_context = " + toml_value(name)
    if default is not None:
        lines[default] = reassigned(lines[default], entry)
    else:
        first = tables[0]
        if first and not lines[first - 1].endswith(("\n", "\r")):
            lines[first - 1] += newline
        lines.insert(first, entry + newline)
    meant["default_context"] = name
    rewrite_contexts(config, lines, meant, "default_context is not one line before the first table")
    return {"name": name, "path": config.path}


def edit_contexts(config, name, settings=None, new_name=None):
    # Rewrite the contexts file, every other byte as it was (comments, order, line endings): NAME's
    # table gets `settings` ({key: value, or None to remove it}; a new context a table at the end),
    # or is renamed NEW_NAME, or is deleted (neither given).
    lines, newline, meant, tables, default = contexts_lines(config)
    contexts = meant.setdefault("contexts", {})
    start = next((i for i in tables[:-1] if re.match(r"\s*\[\s*contexts\s*\.\s*(%s|\"%s\"|'%s')\s*\]" % (
        (re.escape(name),) * 3), lines[i])), None)
    end = next((i for i in tables if start is not None and i > start), len(lines))
    what = "context %r is not one [contexts.%s] table of its own" % (name, name)
    if start is None and name in contexts:
        raise not_editable(config, what)
    header = "[contexts.%s]" % ((new_name or name) if re.match(r"^[\w-]+$", new_name or name) else
                                toml_value(new_name or name))
    if settings is not None:
        table = contexts.setdefault(name, {})
        if start is None:  # a new context: its table at the end, after a blank line
            lines[-1:] = [lines[-1] + ("" if lines[-1].endswith("\n") else newline) + newline] if lines else []
            lines.append(header + newline)
            start, end = len(lines) - 1, len(lines)
        last, added = max([start] + [i for i in range(start + 1, end) if re.match(r"\s*[\w\"']", lines[i])]), []
        for key, value in settings.items():
            text = "%s = %s" % (key, toml_value(value))
            at = next((i for i in range(start + 1, end) if re.match(r"\s*%s\s*=" % key, lines[i])), None)
            if value is None:
                table.pop(key, None)
                if at is not None:
                    lines[at] = ""
            else:
                table[key] = value
                if at is None:
                    added.append(text + newline)
                else:
                    lines[at] = reassigned(lines[at], text)
        lines[last] += newline if added and lines[last] and not lines[last].endswith("\n") else ""
        lines[last + 1:last + 1] = added  # after its last setting
    elif new_name is None:  # deleted: its table and, when it named it, default_context
        while end > start + 1 and lines[end - 1].strip()[:1] in ("", "#"):  # the next table's comments stay
            end -= 1
        while start > 0 and lines[start - 1].strip()[:1] == "#":  # its own, right above it, go with it
            start -= 1
        while start > 0 and not lines[start - 1].strip() and not "".join(lines[end:]).strip():
            start -= 1  # the file's last table: so do the blank lines before it
        lines[start:end] = [""] * (end - start)
        del contexts[name]
        if meant.get("default_context") == name:
            lines[default] = ""
            del meant["default_context"]
    else:
        lines[start] = re.sub(r"\[[^\]]*\]", lambda _: header, lines[start], count=1)
        contexts[new_name] = contexts.pop(name)
        if meant.get("default_context") == name:
            lines[default] = reassigned(lines[default], "default_context = " + toml_value(new_name))
            meant["default_context"] = new_name
    rewrite_contexts(config, lines, meant, what)


def set_context(config, args):
    # The context's settings from the flags given on the line: `contexts set NAME --url ...`.
    if args.api_key is not None:
        raise InvalidInput("contexts set writes no API key: keep it in an environment variable and pass "
                           "--api-key-env VAR")
    given = [one for one in SETTINGS if one.option and getattr(args, one.name, None) is not None]
    unkept = [one.option.flags[-1] for one in given if not one.kind and one.name not in CHOOSING]
    if unkept:
        kept = [one.option.flags[-1] for one in SETTINGS if one.kind and one.option and one.name != "api_key"]
        raise InvalidInput("contexts set: a context does not keep %s (it keeps %s); nothing was written"
                           % (" or ".join(unkept), ", ".join(kept + ["--api-key-env", "--protected"])))
    settings = {one.name: getattr(args, one.name) for one in given if one.kind}
    for key in ("url", "host"):
        if "," in settings.get(key, ""):
            settings[key] = settings[key].split(",")
    if "ca_cert" in settings:  # a context's is relative to the file; the flag's to this folder
        settings["ca_cert"] = os.path.abspath(settings["ca_cert"])
    if "url" in settings and ("host" in settings or "port" in settings):
        raise InvalidInput("contexts set: --url or --host (and --port), not both")
    settings.update({"host": None, "port": None} if "url" in settings else {"url": None} if (
        "host" in settings or "port" in settings) else {})
    settings.update({"api_key_env": args.api_key_env, "api_key": None} if args.api_key_env else {})
    settings.update({"protected": args.protect} if args.protect is not None else {})
    if not [value for value in settings.values() if value is not None]:
        raise InvalidInput("contexts set %s: nothing to set; give --url (or --host and --port), --api-key-env, "
                           "--ca-cert, --protected, --timeout, ..." % args.name)
    if args.name not in config.contexts and "url" not in settings and "host" not in settings:
        raise InvalidInput("contexts set: %s is a new context: give its --url (or --host)" % args.name)
    if args.protect is False and config.contexts.get(args.name, {}).get("protected"):
        args.protected = args.name
        confirm_change(args, "unprotect it", "it is still protected")
    edit_contexts(config, args.name, settings)
    return {"name": args.name, "done": "updated" if args.name in config.contexts else "created",
            "path": config.path}


@command("contexts", option("action", nargs="?", choices=words_in("list use current set delete rename"),
                             default="list", help="list them (the default), use NAME as the default, print the "
                             "current one, set NAME's settings (creating it), delete NAME, rename NAME NEW"),
         option("name", nargs="?", metavar="NAME", help="the context to use, set, delete or rename"),
         option("new_name", nargs="?", metavar="NEW", help="with rename: its new name"),
         option("--api-key-env", metavar="VAR", help="with set: the environment variable that holds its API key"),
         option("--protected", dest="protect", action="store_const", const=True,
                help="with set: every change to this cluster needs its name typed"),
         option("--no-protected", dest="protect", action="store_const", const=False,
                help="with set: not protected (asks, as a change to a protected cluster does)"),
         yes("delete or unprotect a protected context"), SHAPING, view="contexts", local=True)
def cmd_contexts(client, args):
    """List the named clusters of the contexts file, and which one is used and why.

    The file is $XDG_CONFIG_HOME/jadevectordb/cluster.toml (--config FILE, JADEVECTORDB_CONFIG);
    the one used is --context NAME, else JADEVECTORDB_CONTEXT, else the file's default_context.
    'contexts use NAME' makes NAME the file's default_context (nothing else in it changes);
    'contexts current' prints the name of the one used. 'contexts set NAME' creates or updates
    NAME with the settings given on the line (--url or --host/--port, --api-prefix, --format,
    --timeout, --retries, --ca-cert, --api-key-env VAR, --protected/--no-protected; never a key),
    'contexts delete NAME' and 'contexts rename NAME NEW' do as they say; each keeps the rest of the
    file as it was, comments included, and creates it (mode 0600) when there is none.
    example: cluster_cli.py contexts
             cluster_cli.py contexts use staging
             cluster_cli.py contexts set prod --url https://jade-prod.internal:8443 --api-key-env JADE_PROD_KEY \
                 --protected
    """
    config, current = args.contexts_file, args.chosen_context
    if args.action in ("set", "delete", "rename"):
        if args.name is None or (args.action == "rename") != (args.new_name is not None):
            raise InvalidInput("contexts %s: %s" % (args.action, "give NAME NEW" if args.action == "rename" else
                                                     "which one? NAME"))
        new = args.name if args.action == "set" else args.new_name
        if new is not None and not re.match(_CONTEXT_NAME, new):
            raise InvalidInput("context name %s must be letters, digits, '.', '_' or '-'" % shown(new))
        if args.action == "set":
            return Result(set_context(config, args), "context-changed")
        if args.name not in config.contexts or new in config.contexts:
            raise InvalidInput("contexts %s: %s; the file has %s" % (args.action, (
                "there is already a context %s" % shown(new)) if new in config.contexts else "no context %s" % shown(
                args.name), ", ".join(config.contexts) or "none"))
        if args.action == "delete" and config.contexts[args.name].get("protected"):
            args.protected = args.name
            confirm_change(args, "delete it", "it was not deleted")
        edit_contexts(config, args.name, new_name=new)
        return Result({"name": new or args.name, "done": "renamed from %s" % args.name if new else "deleted",
                       "path": config.path}, "context-changed")
    if args.new_name is not None:
        raise InvalidInput("stray word %r: a new name goes with 'contexts rename NAME NEW'" % args.new_name)
    if args.action == "current":
        if current is None:
            raise ClusterError("no context is in use: %s" % (no_file(config) or "pass --context NAME, or run "
                                                              "'cluster_cli.py contexts use NAME'"))
        return Result({"name": current.name, "chosen_by": current.chosen_by}, "context")
    if args.action == "use":
        return Result(use_context(config, args.name), "context-used")
    if args.name is not None:
        raise InvalidInput("stray word %r: a name goes with 'contexts use NAME'" % args.name)
    rows = [{"name": name, "url": context_url(settings), "protected": bool(settings.get("protected")),
             "current": current is not None and name == current.name,
             "chosen_by": current.chosen_by if current is not None and name == current.name else None}
            for name, settings in config.contexts.items()]
    empty = None if rows else "no contexts: %s" % (no_file(config) or "%s has none" % config.path)
    return Result(rows, None, empty)


# --------------------------------------------------------------------------------------------------
# Completion: the shell scripts, made from the parser, and the words they ask the command for
# --------------------------------------------------------------------------------------------------

SHELLS = words_in("bash zsh fish")
# What the scripts run on every TAB: the command itself, given the words after its name (the last
# one being completed); it prints the words to offer, or FILES when the shell's file names are.
ASK, FILES = "__complete", ":files"
# The options passed on when the cluster on the line is asked for its IDs.
TARGET_OPTIONS = words_in("--host --port --url --context --config --api-key --ca-cert --insecure")


# What an option's value is, by its dest: the shell's file names, a context's name, the IDs the
# cluster on the line has, the command's field names. Any other: its choices, or text (nothing offered).
VALUE_KINDS = dict(output="files", plan="files", ca_cert="files", config="files", context="contexts",
                   contexts="contexts", node_id="nodes", to_node="nodes", from_node="nodes", shard_id="shards",
                   columns="fields", sort_by="fields")


def _value_kind(action, cmd_name=""):
    # '' for a flag, else what VALUE_KINDS says ('text' for add-node's --node-id: a new one), 'choices' or 'text'.
    if action.nargs == 0:
        return ""
    kind = VALUE_KINDS.get(action.dest, "choices" if action.choices else "text")
    return "text" if kind == "nodes" and cmd_name in ("", "add-node") else kind


def command_word(argv):
    # Return where the command's name is in argv: the first word that is neither an option nor the
    # value of one of the options every command takes.
    valued = {flag for given in GLOBAL_OPTIONS for flag in given.flags
              if given.settings.get("action") not in ("store_true", "store_false", "version", "help")}
    skip = False
    for index, token in enumerate(argv):
        if skip:
            skip = False
        elif token.startswith("-"):
            skip = token in valued
        else:
            return index
    return None


def described(word, text):
    # 'WORD<TAB>the first clause of its help', cut after whole words at 60 characters: what zsh and
    # fish show beside it (bash shows the word alone).
    summary = (text or "").split(" (")[0].split("; ")[0].split("\n")[0].rstrip(".")
    if len(summary) > 60:
        summary = summary[:59].rsplit(" ", 1)[0].rstrip(",:") + "…"
    return word + "\t" + summary if summary else word


def completion_words(line):
    # The words to offer for the last of `line` (the words typed after the command's name).
    parser = build_parser()
    before, current = line[:-1], (line or [""])[-1]
    at = command_word(before)
    name = before[at] if at is not None else ""
    sub = parser.subparsers.get(name, parser)
    option_of = {flag: action for action in sub._actions + parser._actions for flag in action.option_strings}
    positional, skip = [], False  # the command's words that are neither options nor their values
    for word in before[at + 1 if name else len(before):]:
        if skip or word.startswith("-"):
            skip = not skip and word in option_of and option_of[word].nargs != 0
        else:
            positional.append(word)
    kind = _value_kind(option_of[before[-1]], name) if before and before[-1] in option_of else ""
    kind = "contexts" if name == "contexts" and positional in (["use"], ["delete"], ["rename"], ["set"]) else kind
    if kind == "files":
        return [FILES]
    if kind == "choices":
        return list(map(str, option_of[before[-1]].choices))
    if kind == "fields":
        return field_names(as_listed(Result({}, COMMANDS[name].view))) if name else []
    if kind in ("contexts", "nodes", "shards"):
        passed = []  # the options that name the cluster, as typed on the line
        for flag, value in zip(before, before[1:] + [""]):
            if flag in TARGET_OPTIONS:
                passed += [flag] if flag == "--insecure" else [flag, os.path.expanduser(value)]
        args = build_parser(passed + ["health"]).parse_args(passed + ["health"])
        config = read_config(*config_path(args.config), timeout=2.0)
        if kind == "contexts":  # --contexts a,b,<TAB>: the names not yet in the list, after it
            listed = current[:current.rfind(",") + 1] if before[-1] == "--contexts" else ""
            return [listed + name for name in config.contexts if name not in listed.split(",")]
        settings = client_settings(resolve(setting_sources(flag_source(args), chosen_context(config, args.context),
                                                           environment_source(os.environ))))
        settings.update(timeout=min(settings.get("timeout") or 2.0, 2.0), retries=0)
        with ClusterCLI(**settings) as client:
            found = client.list_nodes() if kind == "nodes" else client.list_shards()
        ids = sorted(fmt_text(field(item, kind[:-1] + "_id")) for item in found)
        return [word for word in ids if word.isprintable() and not word.startswith("-")]
    if kind:
        return []
    if not name and not current.startswith("-"):
        return [described(name, declared.handler.__doc__) for name, declared in COMMANDS.items()]
    choices = [action.choices for action in sub._actions if not action.option_strings and action.choices]
    if choices and not positional and not current.startswith("-"):
        return list(choices[0])
    return [described(flag, action.help) for action in sub._actions for flag in action.option_strings]


def complete_words(line):
    # Print what a completion script asks for, one a line, within 2 seconds and once. Nothing on
    # failure, and exit 0: a shell shows no error while the operator types.
    import contextlib
    import io
    try:
        with contextlib.redirect_stderr(io.StringIO()):  # a context's warning is no completion
            offered = completion_words(line)
    except (ClusterError, SystemExit, OSError, ValueError):
        offered = []
    current = (line or [""])[-1]
    write("".join(word + "\n" for word in offered if word.startswith(current) or word == FILES))
    return EXIT_OK


# The scripts: each hands the words typed to the command (ASK) and offers what it prints.
COMPLETION_SCRIPTS = {
    "bash": r"""# bash completion for jadevectordb-cluster and cluster_cli.py, made by '@PROG@ completion bash'
_jadevectordb_cluster() {
    local base=1 word
    if [[ "${COMP_WORDS[0]##*/}" == python* ]]; then  # python cluster_cli.py ...: ours from word 2
        if (( COMP_CWORD < 2 )) || [[ "${COMP_WORDS[1]##*/}" != cluster_cli.py ]]; then
            compopt -o default 2>/dev/null; COMPREPLY=(); return  # python's own: file names
        fi
        base=2
    fi
    local prog=("${COMP_WORDS[@]:0:base}")
    COMPREPLY=()
    while IFS= read -r word; do COMPREPLY+=("${word%%$'\t'*}"); done < <(
        "${prog[@]/#\~/$HOME}" __complete "${COMP_WORDS[@]:base:COMP_CWORD-base+1}" 2>/dev/null)
    if [[ "${COMPREPLY[*]}" == :files ]]; then COMPREPLY=($(compgen -f -- "${COMP_WORDS[COMP_CWORD]}")); fi
}
complete -F _jadevectordb_cluster jadevectordb-cluster cluster_cli.py python python3
""",
    "zsh": r"""#compdef jadevectordb-cluster cluster_cli.py python python3
# zsh completion for jadevectordb-cluster and cluster_cli.py, made by '@PROG@ completion zsh'
_jadevectordb_cluster() {
    local base=1
    if [[ ${words[1]:t} == python* ]]; then  # python cluster_cli.py ...: ours from word 3
        if (( CURRENT < 3 )) || [[ ${words[2]:t} != cluster_cli.py ]]; then _files; return; fi
        base=2
    fi
    local -a prog offered
    prog=(${words[1,base]/#\~/$HOME})
    offered=(${(f)"$($prog __complete "${(@Q)words[base+1,CURRENT]}" 2>/dev/null)"})
    if [[ "$offered" == :files ]]; then _files; return; fi
    offered=("${(@)${(@)offered//:/\\:}//$'\t'/:}")  # word:summary, as _describe takes them
    _describe value offered
}
if [[ "$funcstack[1]" == "_jadevectordb_cluster" ]]; then _jadevectordb_cluster "$@"
else compdef _jadevectordb_cluster jadevectordb-cluster cluster_cli.py python python3; fi
""",
    "fish": r"""# fish completion for jadevectordb-cluster and cluster_cli.py, made by '@PROG@ completion fish'
function __jadevectordb_cluster_complete
    set -l words (commandline -opc)
    set -l offered ($words[1] __complete $words[2..-1] (commandline -ct) 2>/dev/null)
    if test "$offered" = :files
        __fish_complete_path (commandline -ct)
    else
        string join \n -- $offered
    end
end
for name in jadevectordb-cluster cluster_cli.py
    complete -c $name -f -a '(__jadevectordb_cluster_complete)'
end
"""}


@command("completion", option("shell", choices=SHELLS, help="the shell to complete in"), local=True)
def cmd_completion(client, args):
    """Print a completion script for bash, zsh or fish; on TAB it asks this command what to offer.

    bash: source <(cluster_cli.py completion bash)    (in ~/.bashrc to keep it)
    zsh:  source <(cluster_cli.py completion zsh)     (after compinit, in ~/.zshrc)
    fish: cluster_cli.py completion fish > ~/.config/fish/completions/jadevectordb-cluster.fish
    It completes commands, options, their choices (formats, strategies, statuses), context names,
    the field names of --columns and --sort-by, and the IDs of the cluster named on the line.
    """
    return COMPLETION_SCRIPTS[args.shell].replace("@PROG@", PROG)


# --------------------------------------------------------------------------------------------------
# Running a command
# --------------------------------------------------------------------------------------------------

def EscapingFormatter(fmt):
    # Return a logging formatter whose lines are escaped as every other stderr line is.
    import logging

    class Escaping(logging.Formatter):
        def format(self, record):
            return redact(terminal_text(super().format(record)))

    return Escaping(fmt)


@contextmanager
def verbose_logging(enabled):
    """Send the client's request log to stderr with --verbose, for this run only
    (the logger's level and handlers are as they were afterwards)."""
    if not enabled:
        yield
        return
    import logging
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(EscapingFormatter("%(message)s"))
    logger = logging.getLogger("cluster_cli")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


@contextmanager
def insecure_quietly(enabled):
    """Silence InsecureRequestWarning for each request with --insecure (the CLI said it once);
    the warning filters are as they were afterwards."""
    if not enabled:
        yield
        return
    import warnings
    import urllib3
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", urllib3.exceptions.InsecureRequestWarning)
        yield


class Interrupt(KeyboardInterrupt):
    # SIGTERM or SIGHUP (or Ctrl-C), raised where the command was, so it ends as Ctrl-C does:
    # the same report, temporary files removed, exit 128 + the signal's number.

    def __init__(self, signum):
        super().__init__(signum)
        self.signum = signum


@contextmanager
def signals_stop_the_command(restore):
    """Ctrl-C, SIGTERM and SIGHUP raise Interrupt where the command is. Only the first: later ones
    (a second Ctrl-C while the report is written, one while the interpreter exits) do nothing, so
    nothing breaks the report with a traceback. Our handler stays that no-op after the command; it
    is not set to SIG_IGN, since a signal already pending would then be reported as ignored "due to
    race condition". Then the signals are blocked: the interpreter's exit puts the default handlers
    back, and one arriving then would end the process by that signal, not with the command's exit
    code. A signal already ignored (nohup, a background job) stays ignored. restore: main(argv)
    called in-process puts the handlers back instead. Where raising would hang the command or be
    lost (threading's own code, a finalizer), the signal is raised a step on."""
    import _signal as signal  # the C module signal.py wraps: its enums cost 3.6M instructions on every run
    import threading
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    numbers = [signal.SIGINT, signal.SIGTERM] + ([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])
    previous = {signum: signal.getsignal(signum) for signum in numbers}
    ours = [signum for signum in numbers if previous[signum] != signal.SIG_IGN]
    stopped = []  # the signal raised (only one is), then 0 if raised again at a wait, None once the command ended
    hook, main_thread, clock, sleep = sys.unraisablehook, threading.get_ident(), CLOCK, CLOCK.sleep

    def later(signum):
        # Send the signal again in a moment, from a thread of its own, to be handled at the command's next step.
        def again():
            time.sleep(0.001)
            if not stopped:
                signal.pthread_kill(main_thread, signum)
        __import__("_thread").start_new_thread(again, ())

    def stop(signum, frame):
        if stopped:
            return
        if frame is not None and frame.f_globals is threading.__dict__ and hasattr(signal, "pthread_kill"):
            later(signum)  # in a lock's own code (a Condition's __enter__), where raising can leave the lock
            return  # taken, and urllib3's next use of its pool, in the same request, waits on it for ever
        stopped.append(signum)
        raise Interrupt(signum)

    def waited(delay):
        # Raised where Python drops exceptions (a finalizer, or what one asks: urllib3's `closed`), the signal
        # left the command polling as if none came: it is raised again at the command's next wait.
        if len(stopped) == 1 and threading.get_ident() == main_thread:
            stopped.append(0)
            raise Interrupt(stopped[0])
        sleep(delay)

    def dropped(unraisable):
        if not isinstance(unraisable.exc_value, Interrupt):  # ours is said once, as the command ends
            hook(unraisable)

    for signum in ours:
        signal.signal(signum, stop)
    sys.unraisablehook, clock.sleep = dropped, waited
    try:
        yield
    finally:
        stopped.append(None)
        if restore:
            sys.unraisablehook, clock.sleep = hook, sleep
            for signum in ours:
                signal.signal(signum, previous[signum])
        elif hasattr(signal, "pthread_sigmask"):
            signal.pthread_sigmask(signal.SIG_BLOCK, ours)


def outcome(client, args):
    # Run the command's handler; its result is shown with the view the command declares unless it names another.
    result = args.func(client, args)
    result.view = result.view or COMMANDS[args.command].view
    return result


def shown_as_asked(result, args, output):
    # Print a result shaped by --columns, --sort-by and --no-headers; True when it was '--columns help'.
    shaping = hasattr(args, "columns")
    if shaping and (args.columns or args.sort_by or args.no_headers):
        result = as_listed(result)
    if getattr(args, "columns", None) == "help":
        write("\n".join(field_names(result)) + "\n")
        return True
    style = output._replace(headers=not args.no_headers) if shaping else output
    if shaping:
        result, style = shaped(result, args.columns, args.sort_by, style)
    FORMATS[output.format](result.view, result.data, write, style)
    return False


def print_result(handler, args, output):
    # Return the handler's result, shaped (--columns, --sort-by, --no-headers) and printed; or the state
    # that goes with its error (a plan, a report, the last poll), then the error raised. stdout stays
    # empty on a failure: that state goes to stderr, as a table, unless the error answers: a condition
    # not met (exit 4: the status that is not HEALTHY), a report read in part, doctor's failed checks.
    # Its exit code holds even when the reader of stdout has gone.
    failed = None
    with written_to(output.file):
        try:
            result = handler()
        except ClusterError as exc:
            if output.format == "prometheus" and output.file and exc.exit_code in (EXIT_FAILED, EXIT_UNREACHABLE):
                # The collector must not serve the last run's values as current: up 0, nothing stale,
                # written through the same opening of FILE (a FIFO's reader sees one stream).
                write(prometheus_up(args.command, False, last_success_in(output.file)))
                failed = exc
            elif exc.shown is not None:
                data, view = exc.shown
                if not exc.answers:  # compact stays compact; the others read as a table
                    err_write(rendered(view, data, Output("compact" if output.format == "compact" else "table",
                                                          width=stderr_width())))
                else:  # shaped as the answer it is (--columns, --sort-by, --no-headers)
                    try:
                        shown_as_asked(Result(data, view), args, output)
                    except BrokenPipeError:
                        silence_stdout()
            if failed is None:
                raise
        else:
            if shown_as_asked(result, args, output):
                return EXIT_OK
    if failed is not None:
        raise failed
    if result.warning:
        warn(result.warning)
    return EXIT_OK


def run_raw(client, args):
    # --raw: the command runs as usual, and stdout gets the last body the server sent, byte for byte.
    with client._transport.captured() as bodies:
        try:
            args.func(client, args)
        finally:
            if bodies:
                write(bodies[-1][1])
    return EXIT_OK


def warn_not_numbers(client):
    # Say once which numeric fields held something else: shown as null, so a script's test
    # such as select(.replicas < 2) still catches them.
    if client.not_numbers:
        warn("the cluster sent values that are not numbers in %s: shown as null" % ", ".join(
            sorted(client.not_numbers)))
        client.not_numbers.clear()


def for_command_line(exc):
    # Return the error's text, naming the flag where the client named its parameter
    # (at the start; anywhere for names like max_response_size, which no sentence uses),
    # and the flags in hints that name parameters.
    if isinstance(exc, AuthenticationFailed):
        key_from = getattr(exc, "key_from", None)  # where run() found the key sent
        exc.hint = ("the API key sent%s was refused; pass a valid one" % (", from %s," % key_from if key_from else "")
                    if getattr(exc, "key_sent", True) else "no API key was sent; pass one") + " with --api-key or " + \
            ENV_API_KEY
    elif isinstance(exc, PermissionDenied):
        exc.hint += " (--api-key or %s)" % ENV_API_KEY
    elif getattr(exc, "tls", None) == "unknown-ca":
        exc.hint = "pass --ca-cert PATH to trust the cluster's CA, or --insecure to skip verification"
    elif getattr(exc, "tls", None) == "hostname":
        exc.hint = "connect by a name the certificate carries (--url or --host)"
    text = (str(exc) + ("; " + exc.then if getattr(exc, "then", None) else "")).replace("goes in url", "goes in --url")
    flag = parameter_flags().get(exc.param)
    if flag and text.startswith(exc.param):
        text = flag + text[len(exc.param):]
    elif flag and "_" in exc.param:
        text = re.sub(r"\b%s\b" % exc.param, flag, text)
    return text


def fleet_contexts(args, declared, config):
    # Return the contexts a fleet read asks, in the order given (--all-contexts: the file's), each known
    # before anything is sent; a command that changes a cluster, or a flag that names one cluster, refused.
    listed = "--all-contexts" if args.all_contexts else "--contexts"
    if declared.changes or declared.local or declared.writes_output:
        raise InvalidInput("%s %s: it takes one cluster (--context), not %s" % (
            args.command, "changes a cluster" if declared.changes else "works on one cluster", listed))
    for flag in words_in("--context --url --host --port --watch --raw") + ("--contexts",) * args.all_contexts:
        if getattr(args, flag[2:], None):
            raise InvalidInput("%s does not go with %s: each context names its own cluster" % (flag, listed))
    names = list(config.contexts) if args.all_contexts else args.contexts.split(",")
    if not names:
        raise InvalidInput("--all-contexts: " + (no_file(config) or "%s has no contexts" % config.path))
    return [chosen_context(config, name.strip(), "--contexts") for name in dict.fromkeys(names)]


# Which failure a fleet read's exit code says when clusters differ: the worst, a wrong setting first.
EXIT_RANK = (EXIT_OK, EXIT_CONDITION, EXIT_FAILED, EXIT_UNREACHABLE, EXIT_USAGE)  # any other: worse still


def fleet_table(entries):
    # Return a fleet read as one table: each cluster's rows (a key/value result is one), led by its context,
    # its error last, under the first result's columns but nested ones (JSON carries those).
    first, view = next(((e["result"], e["view"]) for e in entries if "result" in e), ({}, entries[0]["view"]))
    rows = []
    for said in entries:
        items = as_list(as_listed(Result(said["result"], said["view"])).data) if "result" in said else [{}]
        rows += [dict(item if isinstance(item, dict) else {}, context=said["context"], error=said.get("why"))
                 for item in items]
    listed = VIEWS[as_listed(Result(first, view)).view]
    columns = tuple(column for column in listed.columns or map(labelled, map(title_of, listed.fields), listed.fields)
                    if not isinstance(field(first, column.key), dict))
    VIEWS["fleet"] = View(columns=(labelled("Context", "context"),) + columns + (labelled("Error", "error"),),
                          fields=("context",) + tuple(listed.fields or [c.key for c in columns]) + ("error",))
    return Result(rows, "fleet")


def write_fleet_prometheus(entries, output):
    # Write every cluster's series with its context as a label, each metric's series together, its
    # HELP and TYPE once, as the format asks; a cluster not read has its up series at 0.
    families = {}
    for said in entries:
        text = rendered(said["view"], said["result"], output) if "result" in said else prometheus_up(
            said["view"], False, None)
        for line in text.splitlines():
            metric = line.split(" ")[2] if line[:1] == "#" else re.match(r"[^{ ]+", line).group()
            lines, rest = families.setdefault(metric, []), line[len(metric):]
            if line[:1] != "#":
                lines.append('%s{context="%s"%s' % (metric, prometheus_label(said["context"]),
                                                    "," + rest[1:] if rest[:1] == "{" else "}" + rest))
            elif line not in lines:
                lines.append(line)
    write("".join(line + "\n" for lines in families.values() for line in lines))


def fleet_read(args, declared, config, output):
    # Ask every context's cluster at once (--parallel at a time, each within its own --timeout) and
    # show one entry per cluster, in the order asked (ndjson: as each ends); the exit code is the worst.
    contexts, flags = fleet_contexts(args, declared, config), flag_source(args)
    for context in contexts:  # each key kept out of every output before any is asked
        try:
            SPOKEN.keep_secret(context_key(context))
        except ClusterError:
            pass

    def ask(context):
        said, resolved = {"context": context.name, "ok": False}, None
        try:
            resolved = resolve(setting_sources(flags, context, environment_source(os.environ)))
            settings = client_settings(resolved)
            if settings["verify"] is False:
                warn("TLS certificate verification is off for context %s; its identity is not checked" % context.name)
            with ClusterCLI(**settings) as client:
                result = outcome(client, argparse.Namespace(**dict(vars(args), resolved=resolved, protected=None)))
            said.update(ok=True, result=result.data)
            views[context.name] = result.view
        except ClusterError as exc:  # its kind for scripts: ClusterUnreachable is cluster_unreachable
            exc.key_from = resolved and resolved.sources.get("api_key")
            kind = re.sub(r"(?<!^)(?=[A-Z])", "_", type(exc).__name__).lower()
            said["error"] = {"kind": kind, "message": for_command_line(exc), "exit_code": exc.exit_code}
            if exc.shown and exc.answers:  # a condition not met: what was read is still the answer
                said["result"], views[context.name] = exc.shown
        return said

    entries, views = [None] * len(contexts), {}
    with verbose_logging(args.verbose), insecure_quietly(True), written_to(output.file):
        for index, said in as_done(ask, contexts, args.parallel):
            entries[index] = said
            if output.format == "ndjson":
                write(to_json(said) + "\n")
        if output.format == "json":
            write(to_json(entries, indent=2) + "\n")
        failed = [said for said in entries if not said["ok"]]
        for said in entries:  # for the other forms, not in JSON
            said["view"] = views.get(said["context"], declared.view)
            if not said["ok"]:
                said["why"] = "%s: %s" % (said["error"]["kind"], said["error"]["message"])
        if output.format == "prometheus":
            write_fleet_prometheus(entries, output)
        elif output.format == "compact" and not (args.columns or args.sort_by):  # each cluster's own lines
            for said in entries:
                text = rendered(said["view"], said["result"], output) if "result" in said else ""
                text += said.get("why", "")
                write("".join("%s | %s\n" % (said["context"], line) for line in text.splitlines()))
        elif output.format not in ("json", "ndjson"):  # --columns: the result's; the context and error kept
            asked = args.columns and args.columns != "help" and args.columns.split(",")
            columns = asked and ",".join(["context"] + [c for c in asked if c not in ("context", "error")] + ["error"])
            shown_as_asked(fleet_table(entries),
                           argparse.Namespace(**dict(vars(args), columns=columns or args.columns)), output)
    if failed:
        print_error("%d of %s failed: %s" % (len(failed), words(len(entries), "context"), ", ".join(
            "%s (%s)" % (said["context"], said["error"]["kind"]) for said in failed)))
    return max((said["error"]["exit_code"] for said in failed), default=EXIT_OK, key=lambda code: (
        EXIT_RANK.index(code) if code in EXIT_RANK else len(EXIT_RANK)))


def run(args):
    # Run the command layer: flags and context to settings, a client, the command's handler, its result printed.
    declared = COMMANDS[args.command]
    if declared.local and not declared.view:  # a script of its own (completion), whatever the contexts file says
        with written_to(args.output):
            write(args.func(None, args))
        return EXIT_OK
    path, named_by = config_path(args.config)
    if getattr(args, "action", None) == "set" and not os.path.lexists(path):  # contexts set makes the file
        named_by = None
    if getattr(args, "action", None) in ("use", "set", "delete", "rename") and os.path.exists(path) and \
            not os.path.isfile(path):  # a FIFO, --config <(...): refused before its read waits for a writer
        raise InvalidInput("contexts: %s is not a regular file; edit it where it comes from" % path)
    config = read_config(path, named_by, timeout=args.timeout or DEFAULT_TIMEOUT)
    if args.contexts is not None or args.all_contexts:  # many clusters: none is the default context
        resolved = resolve(setting_sources(flag_source(args), None, environment_source(os.environ)))
        return fleet_read(args, declared, config, output_from(args, resolved["format"]))
    context = chosen_context(config, args.context)
    resolved = resolve(setting_sources(flag_source(args), context, environment_source(os.environ)))
    if declared.writes_output:  # --output is its own file (bundle's archive); the result goes to stdout
        args.archive, args.output = args.output, None
    output = output_from(args, resolved["format"])
    args.output_format, args.resolved = output.format, resolved
    if declared.local:  # this machine's files only (contexts, operations): no cluster is asked
        args.contexts_file, args.chosen_context = config, context
        return print_result(lambda: outcome(None, args), args, output)
    settings = client_settings(resolved)
    if resolved.overridden:  # which cluster is asked, said once when another source named a different one
        warn("the cluster is %s, from %s; not %s" % (",".join(base_urls(resolved)), resolved.sources["address"],
                                                   "; nor ".join("%s, from %s" % (",".join(urls), where)
                                                                 for where, urls in resolved.overridden)))
    SPOKEN.keep_secret(settings.get("api_key"))  # kept out of everything written, wherever the key came from
    SPOKEN.command = " ".join([PROG] + address_flags(args))
    args.protected = context.name if context and context.settings.get("protected") else None
    if settings["verify"] is False:
        warn("TLS certificate verification is off (--insecure); the cluster's identity is not checked")
    with verbose_logging(args.verbose), insecure_quietly(settings["verify"] is False),\
            ClusterCLI(**settings) as client:
        client.notice = lambda text: note(text.replace("api_prefix", "--api-prefix"))
        if is_tty(sys.stderr):  # said at once to a person; a script rides out an election quietly
            client._transport.retrying = lambda text: note(text.replace("retries and timeout", "--retries and "
                                                                         "--timeout"))
        where = ",".join(map(hide_credentials, client.base_urls))
        output = output._replace(sent_to="context %s (%s)" % (context.name, where) if context else where)
        if settings.get("api_key"):
            for url in key_over_plain_http(client.base_urls, client.proxy_for):
                warn("the API key is sent unencrypted to %s; use an https:// --url" % url)
        if getattr(args, "watch", None):
            if args.raw:
                raise InvalidInput("--raw does not go with --watch")
            def snapshot():
                try:
                    return outcome(client, args)
                finally:
                    warn_not_numbers(client)
            return watch(snapshot, args.command, output, args.watch, args.count)
        try:
            if args.raw:
                return run_raw(client, args)
            return print_result(lambda: outcome(client, args), args, output)
        except AuthenticationFailed as exc:
            exc.key_from = resolved.sources.get("api_key")
            raise
        except (ClusterUnreachable, NotFound) as exc:
            if exc.message.startswith("cannot reach") and not getattr(exc, "tls", None) and not exc.hint:
                exc.hint = address_origin(resolved, context)
            if (exc.param == "api_prefix" or exc.message.startswith("cannot reach") or isinstance(exc, PartlyRead))\
                    and args.command != "doctor":  # a read that failed whole or in part: doctor says why
                exc.hint += ("; " if exc.hint else "") + "'%s doctor' checks each step" % PROG
            raise
        finally:
            warn_not_numbers(client)


def as_help(argv):
    # Return argv with 'help' and 'help COMMAND' as the --help they ask for.
    at = command_word(argv)
    if at is None or argv[at] != "help":
        return argv
    return argv[:at] + argv[at + 1:at + 2] + ["--help"]


def run_command_line(argv):
    # Parse argv and run the command: the one place errors become a line on stderr and an exit code.
    if argv[:1] == [ASK]:
        return complete_words(argv[1:])
    joined = []  # "--sort-by -vector_count": argparse would take the descending field for an option
    for token in argv:
        if joined and joined[-1] == "--sort-by" and token[:1] == "-" and token[1:2] not in ("", "-"):
            joined[-1] = "--sort-by=" + token
        else:
            joined.append(token)
    argv = as_help(joined)
    at = command_word(argv)
    args = None
    try:
        args = build_parser(argv).parse_args(argv)
        return run(args)
    except OutputError as exc:
        print_error(str(exc))
        silence_stdout()  # or the interpreter's last flush fails again, and exits 120
        return exc.exit_code
    except ClusterError as exc:
        if at is None and exc.message.startswith("the following arguments are required: COMMAND"):
            for line in ("usage: %s [options] COMMAND [options]\n\n%s" % (PROG, EXAMPLES)).splitlines():
                say("", line.replace(DEFAULT_PROG, PROG))
            return EXIT_USAGE  # no command at all: how to start, not an error line
        print_error(for_command_line(exc))
        return exc.exit_code
    except SystemExit as exc:  # --help and --version: main() returns, it does not exit
        return exc.code if isinstance(exc.code, int) else EXIT_OK
    except KeyboardInterrupt as exc:
        say("", interruption(exc))
        return 128 + signal_of(exc)
    except ModuleNotFoundError as exc:
        print_error("the Python package %r is not installed; run: pip install -r requirements.txt" % exc.name)
        return EXIT_FAILED
    except BrokenPipeError:
        silence_stdout()  # the reader (| head) has what it wanted; say nothing more
        return EXIT_OK
    except Exception as exc:  # a bug: one line, and the trace only when asked for
        if getattr(args, "verbose", False):
            import traceback
            for line in traceback.format_exc().splitlines():
                say("", line)
        print_error("unexpected %s: %s (rerun with --verbose for the trace)" % (type(exc).__name__, exc))
        return EXIT_FAILED


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the CLI; returns the process exit code."""
    global PROG, SPOKEN
    in_process = argv is not None
    if argv is None:
        PROG = program_name(sys.argv[0] if sys.argv else "")
    argv = sys.argv[1:] if argv is None else list(argv)
    with collections_spaced(restore=in_process):
        SPOKEN = Spoken()
        SPOKEN.command = PROG
        SPOKEN.keep_secret(*secrets_in(argv))
        with signals_stop_the_command(restore=in_process):
            try:
                return run_command_line(argv)
            except KeyboardInterrupt as exc:  # the first signal came while an error was being reported
                say("", interruption(exc))
                return 128 + signal_of(exc)


def end_process(code):
    # End the script form's process without the interpreter's teardown, which frees every object one by one
    # (38M instructions, 4% of a status run): what of it matters is done first, the exit handlers (logging's,
    # coverage's) and a last flush of stdout and stderr, whose failure exits 120 as the interpreter's would.
    __import__("atexit")._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None and not getattr(stream, "closed", False):
                stream.flush()
        except (OSError, ValueError):
            code = 120
    os._exit(code)


if __name__ == "__main__":
    # Later collections skip what this module made (it lives as long as the process): 13M instructions of
    # the script form's run, most while requests is imported. Not in main(), whose caller's objects are its own.
    __import__("gc").freeze()
    end_process(main())
