#!/usr/bin/env python3
"""A local JadeVectorDB cluster that serves the /api/v1/cluster contract.

    python tests/simulator.py --port 8080                 # 3 nodes, 12 shards
    python tests/simulator.py --port 0 --nodes 100 --shards 100000
    python tests/simulator.py --port 8080 --api-key s3cret --down node-worker-002

The state changes like a cluster's: nodes join, leave and go down, shards
migrate over time, and status, metrics and diagnostics follow. Faults for
tests and demos are switched on by option or through POST /_sim/... (see
CONTROL below). Only the standard library is used, so the simulator runs
wherever the CLI does.
"""
import argparse
import base64
import itertools
import json
import random
import re
import ssl
import sys
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

VERSION = "1.4.2"
STRATEGIES = ("LIVE_COPY", "SNAPSHOT", "INCREMENTAL")
DATABASES = ("products", "users", "logs")
BYTES_PER_VECTOR = 3072  # 768 float32 dimensions
DOWN = ("UNREACHABLE",)

# The first vector counts are the specification's, so its examples read true.
SEED_VECTOR_COUNTS = (125432, 118901, 131245)


# The servers the contract allows, by name: how each differs from the default (the specification's
# example server). A trait is a Cluster option (cluster_name, join_seconds) or a fault; personalities
# combine ("named,dialect"), and "all" is every one at once (replica copies never listed).
PERSONALITIES = {
    "default": {},
    "named": {"cluster_name": "jade-ref"},                 # status carries cluster_name
    "camel-case": {"camel_case": True},                     # nodeId, primaryNode, vectorCount
    "bare-lists": {"bare_lists": True},                     # [...] instead of {"nodes": [...]}
    "numbers-as-strings": {"numbers_as_strings": True},     # "125432"
    "configured-replicas": {"replicas_configured": True},   # replicas is the factor: only status says a shard is short
    "late-replicas": {"unlisted_replicas": 1.0},            # a new copy is listed in replica_nodes a second late
    "unlisted-replicas": {"unlisted_replicas": -1},         # ... or never
    "slow-joins": {"join_seconds": 1.5},                    # a new node stays JOINING for a while
    "dialect": {"dialect": True},                           # /v1 routes, lower-case enums, its own /health
}
PERSONALITIES["all"] = dict(kv for name, traits in PERSONALITIES.items() if name != "late-replicas"
                            for kv in traits.items())
CLUSTER_TRAITS = ("cluster_name", "join_seconds")


def traits_of(personality) -> dict:
    """The traits of a personality: a name, names joined by commas, or a sequence of names."""
    names = personality.split(",") if isinstance(personality, str) else list(personality or ())
    unknown = [n for n in names if n not in PERSONALITIES]
    if unknown:
        raise ValueError("unknown personality %s; known: %s" % (", ".join(unknown), ", ".join(PERSONALITIES)))
    return {k: v for name in names for k, v in PERSONALITIES[name].items()}


def utc_iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def placement(index: int, count: int, copies: int) -> list:
    """Node indexes holding shard `index`, primary first: pairs of nodes take
    turns as primary and replica, so every node carries an equal share."""
    if count == 1:
        return [0]
    pair, direction = divmod(index, 2)
    if count <= 12:
        pairs = list(itertools.combinations(range(count), 2))
        a, b = pairs[pair % len(pairs)]
    else:  # rounds of pairs at growing distance, computed rather than listed
        rounds = count * (count // 2)
        distance, a = divmod(pair % rounds, count)
        b = (a + distance + 1) % count
    if direction:
        a, b = b, a
    extra = [(b + k) % count for k in range(1, count)]
    return ([a, b] + [n for n in extra if n != a])[:max(1, copies)]


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def transform(value, camel_case: bool, numbers_as_strings: bool):
    """Apply the contract's tolerated variations to a response body."""
    if isinstance(value, dict):
        return {
            (camel(k) if camel_case else k): transform(v, camel_case, numbers_as_strings)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [transform(v, camel_case, numbers_as_strings) for v in value]
    if numbers_as_strings and isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return value


class ApiError(Exception):
    def __init__(self, status: int, message: str, code: str = None):
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


# ---------------------------------------------------------------------------
# Cluster state
# ---------------------------------------------------------------------------

class Cluster:
    """The simulated cluster: all state, and every change to it, under one lock."""

    def __init__(self, nodes=3, shards=12, replication_factor=2, migration_seconds=5.0,
                 join_seconds=2.0, rebalance=False, seed=7, clock=time.time, cluster_name=None, personality=()):
        if nodes < 1:
            raise ValueError("a cluster needs at least one node")
        traits_of(personality)  # an unknown name fails here, not at the first request
        self.options = dict(nodes=nodes, shards=shards, replication_factor=replication_factor,
                            migration_seconds=migration_seconds, join_seconds=join_seconds,
                            rebalance=rebalance, seed=seed, cluster_name=cluster_name, personality=personality)
        self.base_clock = clock
        self.offset = 0.0  # seconds added to the clock: advance() moves time on without waiting
        self.lock = threading.RLock()
        self.reset()

    def clock(self) -> float:
        return self.base_clock() + self.offset

    def advance(self, seconds: float) -> None:
        """Move the cluster's time on: joins and migrations progress as if that much had passed."""
        with self.lock:
            self.offset += seconds
            self.tick()

    # -- construction ------------------------------------------------------

    def reset(self):
        traits = traits_of(self.options.get("personality"))
        o = dict(self.options, **{k: v for k, v in traits.items() if k in CLUSTER_TRAITS})
        with self.lock:
            # A request that arrived before this reset (and is still held by a delay) belongs to
            # the cluster that was: it is dropped unanswered, never applied to this one.
            self.generation = getattr(self, "generation", 0) + 1
            self.offset = 0.0
            self.rng = random.Random(o["seed"])
            self.replication_factor = o["replication_factor"]
            self.migration_seconds = o["migration_seconds"]
            self.join_seconds = o["join_seconds"]
            self.rebalance_on_join = o["rebalance"]
            self.started = self.clock()
            self.nodes = {}
            for i in range(o["nodes"]):
                node_id = "node-master-001" if i == 0 else "node-worker-%03d" % i
                self._new_node(node_id, self._address(i), "MASTER" if i == 0 else "WORKER",
                               "HEALTHY", since=self.started - 86400)
            self.master = "node-master-001"
            # Workers first, so the default cluster matches the specification's examples.
            order = [n for n in self.nodes if n != self.master] + [self.master]
            width = max(2, len(str(o["shards"] - 1)))
            self.shards = {}
            for i in range(o["shards"]):
                shard_id = "shard-%0*d" % (width, i)
                copies = [order[k] for k in placement(i, len(order), self.replication_factor)]
                vectors = (SEED_VECTOR_COUNTS[i] if i < len(SEED_VECTOR_COUNTS)
                           else self.rng.randint(90000, 140000))
                self.shards[shard_id] = {
                    "shard_id": shard_id, "database_id": DATABASES[i % len(DATABASES)],
                    "primary_node": copies[0], "replica_nodes": copies[1:],
                    "vector_count": vectors, "read_only": False, "unlisted": {}}
            self.migrations = {}       # migration_id -> migration
            self.most_running = 0      # the most migrations ever running at once
            self.most_per_node = 0     # the most running at once into or out of one node
            self.latest_migration = {}  # shard_id -> migration_id
            self.errors = []
            self.requests = []
            self.faults = {"delay": 0.0, "fail_next": 0, "fail_status": 503, "retry_after": None,
                           "html_next": 0, "empty_next": 0, "respond": [], "fault_methods": [], "bare_lists": False,
                           "camel_case": False, "numbers_as_strings": False, "drop_fields": [],
                           "fail_migrations": {}, "stall_migrations": [], "stall_on_down": False,
                           "forget_migrations": [], "drop_replicas": False, "replica_delay": 0.0,
                           "replicas_configured": False, "unlisted_replicas": None, "dialect": False,
                           "hide_migrations": [], "moved_first": {}, "fail_paths": {}, "hang_paths": []}
            self.faults.update({k: v for k, v in traits.items() if k not in CLUSTER_TRAITS})
            self.rehoming = []  # (due time, shard_id): replicas the cluster has yet to copy after a removal
            self.load = None
            self.version = 0
            self._cache = {}
            self._changed()

    def _address(self, index: int) -> str:
        host = 10 + index
        return "192.168.%d.%d:8080" % (1 + host // 256, host % 256)

    def _new_node(self, node_id, address, role, status, since):
        r = self.rng
        self.nodes[node_id] = {
            "node_id": node_id, "role": role, "address": address, "status": status,
            "cpu_usage": round(r.uniform(15, 45), 1), "memory_usage": round(r.uniform(30, 60), 1),
            "disk_usage": round(r.uniform(8, 30), 1), "since": since, "joined_at": since,
            "last_heartbeat": None}

    def _changed(self):
        """Recompute what is derived from the state, once per change."""
        live = {n for n, node in self.nodes.items() if node["status"] not in DOWN}
        self.primary_counts = {n: 0 for n in self.nodes}
        self.under_replicated, self.offline = [], []
        running = {m["shard_id"] for m in self.migrations.values()
                   if m["status"] in ("PENDING", "IN_PROGRESS")}
        for shard in self.shards.values():
            copies = [shard["primary_node"]] + shard["replica_nodes"]
            self.primary_counts[shard["primary_node"]] = self.primary_counts.get(shard["primary_node"], 0) + 1
            live_copies = sum(1 for n in copies if n in live)
            shard["replicas"] = len(copies)
            shard["size_bytes"] = shard["vector_count"] * BYTES_PER_VECTOR
            if live_copies == 0:
                shard["status"] = "OFFLINE"
                self.offline.append(shard["shard_id"])
            elif shard["shard_id"] in running:
                shard["status"] = "MIGRATING"
            elif live_copies < self.replication_factor:
                shard["status"] = "UNDER_REPLICATED"
                self.under_replicated.append(shard["shard_id"])
            else:
                shard["status"] = "HEALTHY"
        self.version += 1
        self._cache.clear()

    # -- time --------------------------------------------------------------

    def tick(self):
        """Advance joins and migrations to the present moment."""
        now = self.clock()
        changed = False
        for node in self.nodes.values():
            if node["status"] == "JOINING" and now - node["joined_at"] >= self.join_seconds:
                node["status"] = "HEALTHY"
                node["since"] = now
                changed = True
                if self.rebalance_on_join:
                    self._plan_rebalance(node["node_id"])
        for mig in self.migrations.values():
            if mig["status"] in ("PENDING", "IN_PROGRESS") and self._advance(mig, now):
                changed = True
        for due, shard_id in [r for r in self.rehoming if r[0] <= now]:
            self.rehoming.remove((due, shard_id))
            shard = self.shards.get(shard_id)
            home = self._new_home(shard) if shard else None
            if home:
                shard["replica_nodes"].append(home)
                changed = True
        if changed:
            self._changed()

    def _advance(self, mig, now) -> bool:
        """Move one migration forward; True when it ended or changed phase."""
        if mig["shard_id"] in self.faults["stall_migrations"]:
            return False  # stuck where it is: no progress, no end (POST /_sim/faults)
        target = self.nodes.get(mig["target_node"])
        source = self.nodes.get(mig["source_node"])
        down = [n for n, node in (("target", target), ("source", source)) if node is None or node["status"] in DOWN]
        if down and self.faults["stall_on_down"]:
            return False  # a node gone quiet: the migration waits for it, neither failing nor going on
        if target is None or target["status"] in DOWN:
            return self._finish(mig, now, "target node %s became unreachable" % mig["target_node"])
        if source is None or source["status"] in DOWN:
            return self._finish(mig, now, "source node %s became unreachable" % mig["source_node"])
        elapsed = now - mig["_started"]
        fraction = 1.0 if self.migration_seconds <= 0 else min(1.0, elapsed / self.migration_seconds)
        failure = self.faults["fail_migrations"].get(mig["shard_id"])
        if failure and fraction >= 0.5:  # a chosen migration fails halfway (POST /_sim/faults)
            del self.faults["fail_migrations"][mig["shard_id"]]
            mig["progress"], mig["transferred_vectors"] = 50.0, mig["total_vectors"] // 2
            return self._finish(mig, now, failure)
        before = mig["status"], mig["phase"]
        mig["status"] = "IN_PROGRESS"
        mig["progress"] = round(fraction * 100, 1)
        mig["transferred_vectors"] = int(mig["total_vectors"] * fraction)
        shard = self.shards[mig["shard_id"]]
        if mig["strategy"] == "SNAPSHOT":
            # The snapshot is taken at the start; writes pause for the switchover.
            mig["phase"] = "switchover" if fraction >= 0.9 else "copying_snapshot"
            shard["read_only"] = fraction >= 0.9
        elif mig["strategy"] == "INCREMENTAL":
            mig["phase"] = ("initial_sync" if fraction < 0.7 else
                            "catching_up" if fraction < 0.95 else "switchover")
        else:
            mig["phase"] = "copying"
        if fraction >= 1.0:
            return self._finish(mig, now, None)
        return (mig["status"], mig["phase"]) != before

    def _finish(self, mig, now, error):
        shard = self.shards.get(mig["shard_id"])
        mig["finished_at"] = utc_iso(now)
        if shard is not None:
            shard["read_only"] = False
        if error:
            mig["status"], mig["error"] = "FAILED", error
            self._log_error(mig["target_node"], "migration %s of %s failed: %s"
                            % (mig["migration_id"], mig["shard_id"], error))
            return True
        mig["status"], mig["phase"], mig["progress"] = "COMPLETED", "done", 100.0
        mig["transferred_vectors"] = mig["total_vectors"]
        if shard is not None:
            if shard["primary_node"] == mig["source_node"]:
                shard["primary_node"] = mig["target_node"]
            else:
                shard["replica_nodes"] = [mig["target_node"] if n == mig["source_node"] else n
                                          for n in shard["replica_nodes"]]
        return True

    def _log_error(self, node_id, message, severity="ERROR"):
        self.errors.append({"timestamp": utc_iso(self.clock()), "node_id": node_id,
                            "severity": severity, "message": message})
        del self.errors[:-100]

    # -- views -------------------------------------------------------------

    def node_view(self, node_id):
        node = self.nodes[node_id]
        now = self.clock()
        down = node["status"] in DOWN
        cpu = node["cpu_usage"] if self.load is None else round(min(100.0, float(self.load)), 1)
        if down:
            cpu = 0.0
        return {
            "node_id": node_id, "role": node["role"], "address": node["address"],
            "status": node["status"], "shard_count": self.primary_counts.get(node_id, 0),
            "cpu_usage": cpu, "memory_usage": node["memory_usage"], "disk_usage": node["disk_usage"],
            "uptime_seconds": 0 if down else int(now - node["since"]),
            "last_heartbeat": node["last_heartbeat"] or utc_iso(now)}

    def node_checks(self, node_id):
        view = self.node_view(node_id)
        if view["status"] in DOWN:
            return [{"name": "heartbeat", "status": "FAIL",
                     "detail": "no heartbeat since %s" % view["last_heartbeat"]}]
        def level(value, warn, fail):
            return "FAIL" if value >= fail else "WARN" if value >= warn else "PASS"
        return [
            {"name": "heartbeat", "status": "PASS", "detail": "last seen %s" % view["last_heartbeat"]},
            {"name": "cpu", "status": level(view["cpu_usage"], 80, 95), "detail": "%.1f%% busy" % view["cpu_usage"]},
            {"name": "memory", "status": level(view["memory_usage"], 80, 95),
             "detail": "%.1f%% used" % view["memory_usage"]},
            {"name": "storage", "status": level(view["disk_usage"], 80, 95),
             "detail": "%.0f%% used" % view["disk_usage"]},
        ]

    def node_health(self, node_id):
        """A node with its checks; 404 for a node the cluster does not have."""
        if node_id not in self.nodes:
            raise ApiError(404, "node %s not found" % node_id, "NODE_NOT_FOUND")
        return dict(self.node_view(node_id), checks=self.node_checks(node_id))

    def shard_status(self, shard_id):
        """A shard with its latest migration; 404 for a shard the cluster does not have."""
        if shard_id not in self.shards:
            raise ApiError(404, "shard %s not found" % shard_id, "SHARD_NOT_FOUND")
        latest = self.latest_migration.get(shard_id)
        if latest and shard_id in self.faults["forget_migrations"]:  # the cluster loses track of it
            del self.migrations[latest], self.latest_migration[shard_id]
            self._changed()
            latest = None
        if latest and shard_id in self.faults["hide_migrations"]:  # not reported, though it goes on
            latest = None
        return dict(self.shard_view(shard_id), migration=self.migration_view(latest) if latest else None)

    def shard_list(self, database=None, node=None, status=None):
        """The shards, filtered as the contract's query parameters say (node: primary or replica)."""
        return [self.shard_view(shard_id) for shard_id, shard in self.shards.items()
                if (not database or shard["database_id"] == database)
                and (not node or node == shard["primary_node"] or node in shard["replica_nodes"])
                and (not status or shard["status"] == status.upper())]

    def shard_view(self, shard_id):
        s = self.shards[shard_id]
        view = {k: s[k] for k in ("shard_id", "database_id", "primary_node", "replica_nodes",
                                  "replicas", "vector_count", "size_bytes", "status")}
        if s["unlisted"]:
            now = self.clock()
            view["replica_nodes"] = [n for n in s["replica_nodes"] if s["unlisted"].get(n, 0) <= now]
        if self.faults["replicas_configured"]:  # the configured count, whatever the copies: only status tells
            view["replicas"] = self.replication_factor
        if s["read_only"]:
            view["read_only"] = True
        return view

    def migration_view(self, migration_id):
        return {k: v for k, v in self.migrations[migration_id].items() if not k.startswith("_")}

    def status(self):
        down = [n for n, node in self.nodes.items() if node["status"] in DOWN]
        degraded_nodes = [n for n, node in self.nodes.items() if node["status"] == "DEGRADED"]
        if self.offline:
            status = "UNHEALTHY"
        elif down or degraded_nodes or self.under_replicated:
            status = "DEGRADED"
        else:
            status = "HEALTHY"
        # cluster_name only when named: the specification's example server does not send it.
        name = traits_of(self.options.get("personality")).get("cluster_name", self.options.get("cluster_name"))
        named = {"cluster_name": name} if name else {}
        return dict(named, master_node=self.master, total_nodes=len(self.nodes),
                    active_nodes=sum(1 for n in self.nodes.values() if n["status"] in ("HEALTHY", "DEGRADED")),
                    total_shards=len(self.shards), status=status, replication_factor=self.replication_factor)

    def metrics(self):
        live = [self.node_view(n) for n, node in self.nodes.items() if node["status"] not in DOWN]
        def mean(key):
            return round(sum(v[key] for v in live) / len(live), 1) if live else 0.0
        cpu = mean("cpu_usage")
        total_vectors = sum(s["vector_count"] for s in self.shards.values())
        return {
            "cpu_usage": cpu, "memory_usage": mean("memory_usage"), "disk_usage": mean("disk_usage"),
            "queries_per_second": round(len(live) * 500 * (1 + cpu / 100.0), 1),
            "avg_query_latency_ms": round(1.5 + cpu / 25.0, 1),
            "p99_query_latency_ms": round(6 + cpu / 6.0, 1),
            "total_vectors": total_vectors,
            "nodes": {v["node_id"]: {"cpu_usage": v["cpu_usage"], "memory_usage": v["memory_usage"],
                                     "disk_usage": v["disk_usage"]} for v in live}}

    def diagnostics(self):
        nodes = []
        for node_id in self.nodes:
            view = self.node_view(node_id)
            view["checks"] = self.node_checks(node_id)
            nodes.append(view)
        return {"generated_at": utc_iso(self.clock()),
                "topology": {"master_node": self.master, "nodes": list(self.nodes)},
                "nodes": nodes,
                "shard_distribution": dict(self.primary_counts),
                "replication": {"replication_factor": self.replication_factor,
                                "under_replicated_shards": list(self.under_replicated),
                                "offline_shards": list(self.offline)},
                "performance": self.metrics(),
                "errors": list(self.errors)}

    # -- changes -----------------------------------------------------------

    def add_node(self, body):
        if not isinstance(body, dict):
            raise ApiError(400, "request body must be a JSON object", "INVALID_ARGUMENT")
        node_id, address = body.get("node_id"), body.get("address")
        if not isinstance(node_id, str) or not node_id.strip():
            raise ApiError(400, "node_id is required", "INVALID_ARGUMENT")
        if not isinstance(address, str) or not re.match(r"^(\[[0-9a-fA-F:.]+\]|[^:\s\[\]]+):\d{1,5}$", address):
            raise ApiError(400, "address must be host:port", "INVALID_ARGUMENT")
        if node_id in self.nodes:
            raise ApiError(409, "node %s is already in the cluster" % node_id, "NODE_EXISTS")
        if any(n["address"] == address for n in self.nodes.values()):
            raise ApiError(409, "address %s is already used by another node" % address, "ADDRESS_IN_USE")
        now = self.clock()
        self._new_node(node_id, address, "WORKER", "JOINING", since=now)
        self._changed()
        return {"node_id": node_id, "address": address, "status": "JOINING",
                "message": "node is joining the cluster"}

    def _plan_rebalance(self, node_id):
        """Move primaries from the busiest nodes onto a new node, by migration."""
        fair = len(self.shards) // max(1, len(self.nodes))
        busy = sorted(self.primary_counts.items(), key=lambda kv: -kv[1])
        moving = {m["shard_id"] for m in self.migrations.values() if m["status"] in ("PENDING", "IN_PROGRESS")}
        planned = 0
        for source, count in busy:
            for shard in self.shards.values():
                if planned >= fair or count <= fair:
                    break
                if (shard["primary_node"] == source and node_id not in shard["replica_nodes"]
                        and shard["shard_id"] not in moving and self.nodes[source]["status"] not in DOWN):
                    self._start_migration(shard, source, node_id, "LIVE_COPY")
                    planned += 1
                    count -= 1

    def rebalance(self):
        for node_id in self.nodes:
            if self.primary_counts.get(node_id, 0) < len(self.shards) // max(1, len(self.nodes)):
                self._plan_rebalance(node_id)
        self._changed()

    def _holders(self, shard):
        return [shard["primary_node"]] + shard["replica_nodes"]

    def remove_node(self, node_id):
        if node_id not in self.nodes:
            raise ApiError(404, "node %s not found" % node_id, "NODE_NOT_FOUND")
        if node_id == self.master:
            raise ApiError(409, "%s is the master node and cannot be removed" % node_id, "NODE_IS_MASTER")
        if len(self.nodes) == 1:
            raise ApiError(409, "%s is the last node in the cluster" % node_id, "LAST_NODE")
        held = [s for s in self.shards.values() if node_id in self._holders(s)]
        for shard in held:
            others = [n for n in self._holders(shard) if n != node_id and self.nodes[n]["status"] not in DOWN]
            if not others:
                raise ApiError(409, "removing %s would leave %s with no copy; migrate it first"
                               % (node_id, shard["shard_id"]), "WOULD_LOSE_DATA")
        del self.nodes[node_id]
        for shard in held:
            if shard["primary_node"] == node_id:
                live = [n for n in shard["replica_nodes"] if self.nodes[n]["status"] not in DOWN]
                shard["primary_node"] = live[0]
                shard["replica_nodes"] = [n for n in shard["replica_nodes"] if n != live[0]]
            else:
                shard["replica_nodes"] = [n for n in shard["replica_nodes"] if n != node_id]
            if self.faults["drop_replicas"]:
                continue  # as the reference server does: the copy is gone, none is made
            if self.faults["replica_delay"]:
                self.rehoming.append((self.clock() + self.faults["replica_delay"], shard["shard_id"]))
                continue
            home = self._new_home(shard)
            if home:
                shard["replica_nodes"].append(home)
                lag = self.faults["unlisted_replicas"]
                if lag is not None:  # copied at once, but left out of replica_nodes for a while, or for good
                    shard["unlisted"][home] = self.clock() + lag if lag >= 0 else float("inf")
        for mig in self.migrations.values():
            if mig["status"] in ("PENDING", "IN_PROGRESS") and node_id in (mig["source_node"], mig["target_node"]):
                self._finish(mig, self.clock(), "node %s was removed from the cluster" % node_id)
        self._changed()
        return {"node_id": node_id, "removed": True, "shards_redistributed": len(held),
                "message": "%d shards redistributed to the remaining nodes" % len(held)}

    def _new_home(self, shard):
        """The least loaded live node that holds no copy of the shard, if any."""
        holders = set(self._holders(shard))
        candidates = [n for n, node in self.nodes.items()
                      if n not in holders and node["status"] in ("HEALTHY", "DEGRADED")]
        if not candidates:
            return None
        load = {n: 0 for n in candidates}
        for s in self.shards.values():
            for n in self._holders(s):
                if n in load:
                    load[n] += 1
        return min(candidates, key=lambda n: (load[n], n))

    def migrate(self, shard_id, body):
        shard = self.shards.get(shard_id)
        if shard is None:
            raise ApiError(404, "shard %s not found" % shard_id, "SHARD_NOT_FOUND")
        if not isinstance(body, dict):
            raise ApiError(400, "request body must be a JSON object", "INVALID_ARGUMENT")
        first = self.faults["moved_first"].pop(shard_id, None)
        if first:  # another operator moved it just before this request came: [target, finished or running]
            mig = self._start_migration(shard, shard["primary_node"], first[0], "LIVE_COPY")
            if first[1]:
                mig["_started"] -= self.migration_seconds
                self._advance(mig, self.clock())
            self._changed()
        target, source = body.get("target_node"), body.get("source_node")
        strategy = body.get("strategy", "LIVE_COPY")
        if self.faults["dialect"] and isinstance(strategy, str):
            strategy = strategy.upper()  # the server's own dialect reads either case
        if strategy not in STRATEGIES:
            raise ApiError(400, "strategy must be one of %s" % ", ".join(STRATEGIES), "INVALID_STRATEGY")
        if not isinstance(target, str) or not target:
            raise ApiError(400, "target_node is required", "INVALID_ARGUMENT")
        if target not in self.nodes:
            raise ApiError(404, "node %s not found" % target, "NODE_NOT_FOUND")
        if source is not None and source not in self.nodes:
            raise ApiError(404, "node %s not found" % source, "NODE_NOT_FOUND")
        source = source or shard["primary_node"]
        if source != shard["primary_node"]:
            raise ApiError(409, "%s lives on %s, not %s" % (shard_id, shard["primary_node"], source),
                           "WRONG_SOURCE")
        if target in self._holders(shard):
            raise ApiError(409, "%s already holds a copy of %s" % (target, shard_id), "TARGET_HOLDS_SHARD")
        current = self.migrations.get(self.latest_migration.get(shard_id))
        if current and current["status"] in ("PENDING", "IN_PROGRESS"):
            raise ApiError(409, "migration %s of %s is already running" % (current["migration_id"], shard_id),
                           "MIGRATION_RUNNING")
        mig = self._start_migration(shard, source, target, strategy)
        self._changed()
        return self.migration_view(mig["migration_id"])

    def _start_migration(self, shard, source, target, strategy):
        now = self.clock()
        migration_id = "mig-%04x" % (len(self.migrations) + 1 + 0x7f00)
        mig = {"migration_id": migration_id, "shard_id": shard["shard_id"], "strategy": strategy,
               "source_node": source, "target_node": target, "status": "PENDING", "phase": "queued",
               "progress": 0.0, "transferred_vectors": 0, "total_vectors": shard["vector_count"],
               "started_at": utc_iso(now), "finished_at": None, "error": None, "_started": now}
        self.migrations[migration_id] = mig
        self.latest_migration[shard["shard_id"]] = migration_id
        running = [m for m in self.migrations.values() if m["status"] in ("PENDING", "IN_PROGRESS")]
        self.most_running = max(self.most_running, len(running))  # for tests of concurrency limits
        per_node = {}
        for m in running:
            for node in {m["source_node"], m["target_node"]}:
                per_node[node] = per_node.get(node, 0) + 1
        self.most_per_node = max([self.most_per_node] + list(per_node.values()))
        return mig

    def set_node_status(self, node_id, status):
        if node_id not in self.nodes:
            raise ApiError(404, "node %s not found" % node_id, "NODE_NOT_FOUND")
        node = self.nodes[node_id]
        now = self.clock()
        if status in DOWN and node["status"] not in DOWN:
            node["last_heartbeat"] = utc_iso(now)
            self._log_error(node_id, "node %s is unreachable: heartbeat missed" % node_id)
        elif status not in DOWN:
            node["last_heartbeat"] = None
            if node["status"] in DOWN:
                node["since"] = now
                self._log_error(node_id, "node %s is reachable again" % node_id, "INFO")
        node["status"] = status
        self._changed()


# ---------------------------------------------------------------------------
# HTTP
# ---------------------------------------------------------------------------

CONTROL = """Control endpoints (outside /api/v1, no API key needed):
  POST /_sim/reset                      back to the initial state
  POST /_sim/nodes/{id}/down | /up      take a node down or bring it back
  POST /_sim/faults  {"delay": s, "fail_next": n, "fail_status": 503, "retry_after": s,
                      "html_next": n, "empty_next": n, "fault_methods": ["GET"],
                      "respond": [{"status": 200, "body": "...", "content_type": "..."}],
                      "bare_lists": b, "camel_case": b, "numbers_as_strings": b, "drop_fields": [...],
                      "fail_migrations": {"shard-02": "disk full"}, "stall_migrations": ["shard-03"],
                      "stall_on_down": b, "forget_migrations": ["shard-04"], "drop_replicas": b,
                      "replica_delay": s, "replicas_configured": b, "unlisted_replicas": s, "dialect": b,
                      "hide_migrations": ["shard-05"], "moved_first": {"shard-01": ["node-worker-003", b]},
                      "fail_paths": {"/api/v1/cluster/metrics": 500}, "hang_paths": ["/api/v1/cluster/diagnostics"]}
                     (fault_methods: the counted faults and the delay hit only those methods;
                      fail_migrations: that shard's next migration fails halfway;
                      stall_migrations: its migrations make no progress and never end;
                      stall_on_down: migrations to or from a node that is down stall instead of failing;
                      forget_migrations: the cluster forgets that shard's migration when asked for it;
                      hide_migrations: it stops reporting that shard's migration, which goes on (MIGRATING);
                      moved_first: when a migrate request for that shard comes, another operator's migration
                      of it to that node starts just before it (b: and has finished);
                      fail_paths: that path answers with that status; hang_paths: that path never answers;
                      drop_replicas: a removal leaves the node's shards a copy short (the reference server);
                      replica_delay: a removal's copies are made that many seconds later;
                      replicas_configured: a shard's replicas is the replication factor, whatever its copies;
                      unlisted_replicas: a removal's new copy is listed in replica_nodes s seconds late, -1 never;
                      dialect: routes under /v1, lower-case enum values, /health as the server's own)
  POST /_sim/load    {"cpu_usage": 90}  every live node reports this CPU load
                     {"nodes": {"node-worker-002": {"disk_usage": 97}}}  that node's own figures, kept
  POST /_sim/rebalance                  move primaries onto under-loaded nodes
  GET  /_sim/requests | DELETE          the requests received under /api/v1 and /health
"""

HTML_502 = (b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
            b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
            b"</body>\r\n</html>\r\n")

ENUM_KEYS = ("status", "role", "strategy", "severity")


def lower_enums(value):
    """The server's own dialect: enum values in lower case (healthy, master, live_copy)."""
    if isinstance(value, dict):
        return {k: v.lower() if k in ENUM_KEYS and isinstance(v, str) else lower_enums(v) for k, v in value.items()}
    if isinstance(value, list):
        return [lower_enums(v) for v in value]
    return value


def encode(payload, faults) -> bytes:
    """A body as the faults say the server sends it: fields dropped, lower-case enums, camelCase,
    numbers as strings."""
    if faults["drop_fields"]:
        payload = _drop(payload, set(faults["drop_fields"]))
    if faults["dialect"]:
        payload = lower_enums(payload)
    if faults["camel_case"] or faults["numbers_as_strings"]:
        payload = transform(payload, faults["camel_case"], faults["numbers_as_strings"])
    return json.dumps(payload).encode()


def listing(cluster, key, items_fn, cacheable=True):
    """A list body, wrapped or bare as the faults say; unfiltered ones serialised once per state version."""
    faults = cluster.faults
    variant = (key, faults["bare_lists"], faults["camel_case"], faults["numbers_as_strings"],
               tuple(faults["drop_fields"]), faults["dialect"], cluster.version)
    if cacheable and variant in cluster._cache:
        return cluster._cache[variant]
    items = items_fn()
    body = encode(items if faults["bare_lists"] else {key: items}, faults)
    if cacheable:
        cluster._cache[variant] = body
    return body


def list_shards(cluster, query, body):
    database, node, status = (query.get(name, [None])[-1] for name in ("database_id", "node_id", "status"))
    return 200, listing(cluster, "shards", lambda: cluster.shard_list(database, node, status),
                        cacheable=not (database or node or status))


# (method, path pattern, endpoint): an endpoint takes (cluster, query, body, *path parameters)
# and returns (status, a body object or encoded bytes); every contract error is the Cluster's ApiError.
ROUTES = [(method, re.compile(pattern), endpoint) for method, pattern, endpoint in (
    ("GET", r"^/api/v1/cluster/status$", lambda cluster, query, body: (200, cluster.status())),
    ("GET", r"^/api/v1/cluster/metrics$", lambda cluster, query, body: (200, cluster.metrics())),
    ("GET", r"^/api/v1/cluster/diagnostics$", lambda cluster, query, body: (200, cluster.diagnostics())),
    ("GET", r"^/api/v1/cluster/nodes$", lambda cluster, query, body: (200, listing(
        cluster, "nodes", lambda: [cluster.node_view(n) for n in cluster.nodes], cacheable=False))),
    ("POST", r"^/api/v1/cluster/nodes$", lambda cluster, query, body: (201, cluster.add_node(body))),
    ("DELETE", r"^/api/v1/cluster/nodes/([^/]+)$",
     lambda cluster, query, body, node_id: (200, cluster.remove_node(node_id))),
    ("GET", r"^/api/v1/cluster/nodes/([^/]+)/health$",
     lambda cluster, query, body, node_id: (200, cluster.node_health(node_id))),
    ("GET", r"^/api/v1/cluster/shards$", list_shards),
    ("GET", r"^/api/v1/cluster/shards/([^/]+)$",
     lambda cluster, query, body, shard_id: (200, cluster.shard_status(shard_id))),
    ("POST", r"^/api/v1/cluster/shards/([^/]+)/migrate$",
     lambda cluster, query, body, shard_id: (202, cluster.migrate(shard_id, body))),
)]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body leave at once, no delayed-ACK stalls
    server_version = "JadeVectorDB-Sim/" + VERSION

    def log_message(self, *args):  # quiet: the request log is in /_sim/requests
        pass

    def do_GET(self):
        self._handle("GET")

    def do_POST(self):
        self._handle("POST")

    def do_DELETE(self):
        self._handle("DELETE")

    def do_PUT(self):
        self._handle("PUT")

    # -- plumbing ----------------------------------------------------------

    def _send(self, status, body: bytes, content_type="application/json", headers=()):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _send_json(self, status, obj, headers=()):
        self._send(status, json.dumps(obj).encode(), headers=headers)

    def _read_body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _handle(self, method):
        """One request: a control endpoint, or recorded, then faults, the key, the route."""
        parts = urlsplit(self.path)
        path, query, raw = parts.path, parse_qs(parts.query), self._read_body()
        if path.startswith("/_sim/"):
            return self._control(method, path, raw)
        with self.server.answering:
            self._answer(method, path, query, raw)

    def _answer(self, method, path, query, raw):
        faults, fault, generation = self._record(method, path, query, raw)
        if faults["delay"] and (not faults["fault_methods"] or method in faults["fault_methods"]):
            time.sleep(faults["delay"])
        if fault is not None:
            return self._send_fault(fault, faults)
        hung = time.monotonic()
        while path in self.server.cluster.faults["hang_paths"] and time.monotonic() - hung < 60:
            time.sleep(0.05)  # answers nothing until the fault is lifted (a reset), a minute at most
        if path in faults["fail_paths"]:
            echoed = self.headers.get("Authorization")  # as a careless server does: the key, raw and in base64
            return self._send_json(faults["fail_paths"][path], dict(
                {"error": "internal error reading %s" % path}, **{"request": {"authorization": echoed, "encoded": (
                    base64.b64encode(echoed.encode()).decode())}} if echoed else {}))
        if path == "/health" and method == "GET":
            if faults["dialect"]:  # the server's own health answer
                return self._send_json(200, {"status": "healthy", "timestamp": utc_iso(time.time()),
                                             "checks": {"database": "ok", "storage": "ok", "cluster": "ok"}})
            return self._send_json(200, {"status": "ok", "version": VERSION})
        if faults["dialect"]:  # the server's routes are under /v1 (its web front end maps /api/* there)
            if not path.startswith("/v1/"):
                return self._send_json(404, {"error": "Not Found"})
            path = "/api" + path
        if self._authorised(method):
            self._route(method, path, query, raw, faults, generation)

    def _record(self, method, path, query, raw):
        """Log the request for tests; returns the faults in force, the fault this request gets
        and the cluster's generation (which a reset moves on)."""
        cluster = self.server.cluster
        with cluster.lock:
            cluster.requests.append({
                "method": method, "path": path, "query": {k: v[-1] for k, v in query.items()},
                "raw_path": self.path, "body": raw.decode("utf-8", "replace") if raw else None,
                "authorization": self.headers.get("Authorization"), "client_port": self.client_address[1]})
            return dict(cluster.faults), self._next_fault(cluster.faults, method), cluster.generation

    def _send_fault(self, fault, faults):
        if fault == "fail_next":
            headers = [] if faults["retry_after"] is None else [("Retry-After", str(faults["retry_after"]))]
            return self._send_json(faults["fail_status"], {"error": "leader election in progress, retry later",
                                                           "code": "UNAVAILABLE"}, headers)
        if fault == "html_next":
            return self._send(502, HTML_502, "text/html")
        if fault == "empty_next":
            return self._send(200, b"")
        return self._send(fault.get("status", 200), fault.get("body", "").encode("utf-8"),
                          fault.get("content_type", "application/json"))

    def _route(self, method, path, query, raw, faults, generation):
        """The endpoint for this method and path, its answer or the contract's error."""
        matches = [(route_method, pattern.match(path), endpoint) for route_method, pattern, endpoint in ROUTES]
        found = [(match, endpoint) for route_method, match, endpoint in matches if match and route_method == method]
        if not found:
            if any(match for _, match, _ in matches):
                return self._send_json(405, {"error": "method %s not allowed on %s" % (method, path)})
            return self._send_json(404, {"error": "no such endpoint: %s" % path, "code": "NOT_FOUND"})
        match, endpoint = found[0]
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            return self._send_json(400, {"error": "request body is not JSON", "code": "INVALID_JSON"})
        cluster = self.server.cluster
        try:
            with cluster.lock:
                if cluster.generation != generation:
                    self.close_connection = True  # reset while it waited: lost with the old cluster
                    return None
                cluster.tick()
                status, payload = endpoint(cluster, query, body, *[unquote(g) for g in match.groups()])
        except ApiError as exc:
            return self._send_json(exc.status, dict({"error": exc.message}, **({"code": exc.code} if exc.code else {})))
        self._send(status, payload if isinstance(payload, bytes) else encode(payload, faults))

    @staticmethod
    def _next_fault(faults, method):
        """The fault this request gets (a canned answer first), counted down; `fault_methods`
        limits the counted faults to those methods (say, only the polls: ["GET"])."""
        if faults["respond"]:
            return faults["respond"].pop(0)
        if faults["fault_methods"] and method not in faults["fault_methods"]:
            return None
        for name in ("fail_next", "html_next", "empty_next"):
            if faults[name] > 0:
                faults[name] -= 1
                return name
        return None

    def _authorised(self, method):
        keys = self.server.api_keys
        if not keys:
            return True
        header = self.headers.get("Authorization") or ""
        key = header[7:] if header.startswith("Bearer ") else None
        rights = keys.get(key)
        if rights is None:
            self._send_json(401, {"error": "missing or invalid API key", "code": "UNAUTHENTICATED"})
            return False
        if method != "GET" and rights != "admin":
            self._send_json(403, {"error": "this API key may only read", "code": "PERMISSION_DENIED"})
            return False
        return True

    # -- control -----------------------------------------------------------

    def _control(self, method, path, raw):
        cluster = self.server.cluster
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            return self._send_json(400, {"error": "control body is not JSON"})
        with cluster.lock:
            if path == "/_sim/requests":
                if method == "DELETE":
                    cluster.requests.clear()
                return self._send_json(200, list(cluster.requests))
            if method != "POST":
                return self._send_json(405, {"error": "control endpoints take POST"})
            if path == "/_sim/reset":
                cluster.reset()
                return self._send_json(200, {"reset": True})
            if path == "/_sim/faults":
                unknown = set(body) - set(cluster.faults)
                if unknown:
                    return self._send_json(400, {"error": "unknown faults: %s" % ", ".join(sorted(unknown))})
                cluster.faults.update(body)
                cluster._cache.clear()
                return self._send_json(200, cluster.faults)
            if path == "/_sim/load":
                cluster.load = body.get("cpu_usage")
                for node_id, usage in body.get("nodes", {}).items():  # a node's own figures, kept
                    cluster.nodes[node_id].update(usage)
                cluster._cache.clear()
                return self._send_json(200, {"cpu_usage": cluster.load})
            if path == "/_sim/rebalance":
                cluster.tick()
                cluster.rebalance()
                return self._send_json(200, {"migrations": [m for m in cluster.migrations]})
            match = re.match(r"^/_sim/nodes/([^/]+)/(down|up)$", path)
            if match:
                try:
                    cluster.tick()
                    cluster.set_node_status(unquote(match.group(1)),
                                            "UNREACHABLE" if match.group(2) == "down" else "HEALTHY")
                except ApiError as exc:
                    return self._send_json(exc.status, {"error": exc.message})
                return self._send_json(200, cluster.node_view(unquote(match.group(1))))
        return self._send_json(404, {"error": "no such control endpoint: %s" % path})


def _drop(value, names):
    if isinstance(value, dict):
        return {k: _drop(v, names) for k, v in value.items() if k not in names}
    if isinstance(value, list):
        return [_drop(v, names) for v in value]
    return value


class Answering:
    """Counts the API requests being answered, so a test can wait for the last one to end."""

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
        """True once no request is being answered; False if one still is after `timeout` seconds."""
        with self.done:
            return self.done.wait_for(lambda: self.count == 0, timeout)


class SimulatorServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, cluster, api_keys=None, tls=None):
        super().__init__(address, Handler)
        self.cluster = cluster
        self.answering = Answering()
        self.api_keys = api_keys or {}
        if tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self.socket = context.wrap_socket(self.socket, server_side=True)

    def handle_error(self, request, client_address):
        """A client that hung up (a CLI timeout, Ctrl-C) is not the simulator's error."""
        if not isinstance(sys.exc_info()[1], (ConnectionError, ssl.SSLError)):
            super().handle_error(request, client_address)

    @property
    def port(self) -> int:
        return self.server_address[1]


def start(port=0, cluster=None, api_keys=None, tls=None, host="127.0.0.1"):
    """Serve in a background thread; returns the server (stop with .shutdown())."""
    server = SimulatorServer((host, port), cluster or Cluster(), api_keys, tls)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server


def demo(server, keep=None) -> int:
    """Serve in the background and show the CLI's status of this cluster; on a terminal (or with
    keep=True) go on serving until Ctrl-C, so the commands it suggests can be tried."""
    import os
    import subprocess
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    script = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "cluster_cli.py")
    target = "--host 127.0.0.1 --port %d" % server.port
    print("$ python cluster_cli.py %s status" % target, flush=True)
    keep = sys.stdin.isatty() if keep is None else keep
    try:
        code = subprocess.run([sys.executable, script] + target.split() + ["status"]).returncode
        if not keep:
            print("(not on a terminal: the simulated cluster stops now; 'python tests/simulator.py --port 8080' "
                  "keeps one)", flush=True)
            return code
        print("\nThe simulated cluster runs until Ctrl-C. In another terminal, try:\n"
              "  python cluster_cli.py %s nodes\n"
              "  python cluster_cli.py %s shards --sort-by -vector_count\n"
              "  python cluster_cli.py %s add-node --node-id node-worker-003 --address 192.168.1.13:8080\n"
              "  python cluster_cli.py %s rebalance --dry-run" % (target, target, target, target), flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            print("", flush=True)
        return code
    finally:
        server.shutdown()
        server.server_close()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description="Serve a simulated JadeVectorDB cluster on 127.0.0.1.",
        epilog=CONTROL, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=8080, help="port to listen on; 0 picks a free one and prints it")
    parser.add_argument("--bind", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--nodes", type=int, default=3, help="number of nodes, 1-1000 (default 3)")
    parser.add_argument("--shards", type=int, default=12, help="number of shards, 0-1000000 (default 12)")
    parser.add_argument("--replication-factor", type=int, default=2, help="copies of each shard (default 2)")
    parser.add_argument("--migration-seconds", type=float, default=5.0, help="how long a migration takes")
    parser.add_argument("--join-seconds", type=float, default=2.0, help="how long a new node stays JOINING")
    parser.add_argument("--auto-rebalance", action="store_true",
                        help="move shards onto a node once it has joined (otherwise: POST /_sim/rebalance)")
    parser.add_argument("--cluster-name", help="the name the status answer carries (default: none, as in the "
                                               "specification's example)")
    parser.add_argument("--api-key", help="require this key (Authorization: Bearer KEY) for /api/v1")
    parser.add_argument("--read-only-key", help="also accept this key, for GET requests only (403 otherwise)")
    parser.add_argument("--down", action="append", default=[], metavar="NODE_ID", help="start with this node down")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds to wait before every answer")
    parser.add_argument("--fail-next", type=int, default=0, metavar="N",
                        help="answer the first N API requests with 503 (a leader election)")
    parser.add_argument("--html-next", type=int, default=0, metavar="N",
                        help="answer the first N API requests with a proxy's HTML 502 page")
    parser.add_argument("--bare-lists", action="store_true", help="serve lists as bare JSON arrays")
    parser.add_argument("--camel-case", action="store_true", help="serve camelCase field names")
    parser.add_argument("--numbers-as-strings", action="store_true", help="serve numbers as strings")
    parser.add_argument("--personality", default="", metavar="NAME[,NAME...]",
                        help="serve as another server the contract allows: %s" % ", ".join(PERSONALITIES))
    parser.add_argument("--tls-cert", help="serve HTTPS with this certificate (PEM)")
    parser.add_argument("--tls-key", help="the certificate's private key (PEM)")
    parser.add_argument("--demo", action="store_true",
                        help="start on a free port and run 'cluster_cli.py status' against it; on a terminal, "
                             "keep serving until Ctrl-C")
    args = parser.parse_args(argv)
    if args.demo:
        args.port = 0
    if not 1 <= args.nodes <= 1000 or not 0 <= args.shards <= 1000000:
        parser.error("--nodes must be 1-1000 and --shards 0-1000000")
    try:
        traits_of(args.personality.split(",") if args.personality else ())
    except ValueError as exc:
        parser.error(str(exc))
    cluster = Cluster(nodes=args.nodes, shards=args.shards, replication_factor=args.replication_factor,
                      migration_seconds=args.migration_seconds, join_seconds=args.join_seconds,
                      rebalance=args.auto_rebalance, cluster_name=args.cluster_name,
                      personality=args.personality.split(",") if args.personality else ())
    for node_id in args.down:
        cluster.set_node_status(node_id, "UNREACHABLE")
    cluster.faults.update(delay=args.delay, fail_next=args.fail_next, html_next=args.html_next,
                          bare_lists=args.bare_lists, camel_case=args.camel_case,
                          numbers_as_strings=args.numbers_as_strings)
    keys = {}
    if args.api_key:
        keys[args.api_key] = "admin"
    if args.read_only_key:
        keys[args.read_only_key] = "read"
    tls = (args.tls_cert, args.tls_key) if args.tls_cert else None
    try:
        server = SimulatorServer((args.bind, args.port), cluster, keys, tls)
    except OSError as exc:
        print("simulator: cannot listen on %s:%d: %s" % (args.bind, args.port, exc.strerror), file=sys.stderr)
        return 1
    if args.demo:
        return demo(server)
    print(server.port if args.port == 0 else
          "simulator: %d nodes, %d shards on %s://%s:%d" % (
              args.nodes, args.shards, "https" if tls else "http", args.bind, server.port), flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
