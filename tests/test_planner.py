"""Property-based: the rebalance and drain planners over random clusters."""
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

import cluster_cli


@st.composite
def clusters(draw):
    """(nodes, shards): up to 8 nodes (most HEALTHY), up to 40 shards, each with 0-2 replicas."""
    count = draw(st.integers(1, 8))
    statuses = draw(st.lists(st.sampled_from(["HEALTHY"] * 6 + ["JOINING", "UNREACHABLE", "DEGRADED"]),
                             min_size=count, max_size=count))
    nodes = [{"node_id": "n%d" % i, "status": status} for i, status in enumerate(statuses)]
    shards = []
    for i in range(draw(st.integers(0, 40))):
        primary = draw(st.integers(0, count - 1))
        others = [n for n in range(count) if n != primary]
        replicas = draw(st.lists(st.sampled_from(others), unique=True, max_size=min(2, len(others)))) if others else []
        shards.append({"shard_id": "s%02d" % i, "primary_node": "n%d" % primary,
                       "replica_nodes": ["n%d" % r for r in replicas],
                       "vector_count": draw(st.integers(0, 1000)),
                       "status": draw(st.sampled_from(["HEALTHY"] * 8 + ["MIGRATING", "UNDER_REPLICATED"]))})
    return nodes, shards


def applied(shards, moves):
    """The shards after the moves: each moved primary on its target."""
    by_shard = {m["shard_id"]: m for m in moves}
    out = []
    for shard in shards:
        move = by_shard.get(shard["shard_id"])
        if move:
            replicas = [r for r in shard["replica_nodes"] if r != move["target_node"]]
            shard = dict(shard, primary_node=move["target_node"], replica_nodes=replicas)
        out.append(shard)
    return out


def healthy(nodes):
    return {n["node_id"] for n in nodes if n["status"] == "HEALTHY"}


def legal(nodes, shards, moves):
    by_shard = {s["shard_id"]: s for s in shards}
    assert len({m["shard_id"] for m in moves}) == len(moves)  # each shard at most once
    for move in moves:
        shard = by_shard[move["shard_id"]]
        assert shard["status"] == "HEALTHY"
        assert move["source_node"] == shard["primary_node"] in healthy(nodes)
        assert move["target_node"] in healthy(nodes)  # only HEALTHY targets
        assert move["target_node"] not in [shard["primary_node"]] + shard["replica_nodes"]  # holds no copy


def loads(nodes, shards, by="shards"):
    load = {n: 0 for n in healthy(nodes)}
    for shard in shards:
        if shard["primary_node"] in load:
            load[shard["primary_node"]] += 1 if by == "shards" else shard["vector_count"]
    return load


def spread(load):
    return max(load.values()) - min(load.values()) if load else 0


@given(cluster=clusters())
def test_balance_by_shards(cluster):
    nodes, shards = cluster
    plan = cluster_cli.rebalance_plan(nodes, shards)
    legal(nodes, shards, plan["moves"])
    after = applied(shards, plan["moves"])
    load = loads(nodes, after)
    assert {n: c for n, c in plan["after"].items() if n in load} == load
    if not load:
        assert plan["moves"] == []  # no HEALTHY node: nothing can move
    elif spread(load) > 1:  # where the copies do not allow it: no legal move would narrow a gap of two or more
        for shard in after:
            source = shard["primary_node"]
            if source not in load or shard["status"] != "HEALTHY":
                continue
            for target in load:
                if load[source] - load[target] >= 2:
                    assert target in [source] + shard["replica_nodes"], (shard, target, load)
    assert cluster_cli.rebalance_plan(nodes, after)["moves"] == []  # its own result is balanced


@st.composite
def unconstrained(draw):
    """Every node and shard HEALTHY, and no replica in the way of any move."""
    nodes, shards = draw(clusters())
    return ([dict(n, status="HEALTHY") for n in nodes],
            [dict(s, status="HEALTHY", replica_nodes=[]) for s in shards])


@given(cluster=unconstrained())
def test_balance_by_shards_in_the_fewest_moves(cluster):
    nodes, shards = cluster
    plan = cluster_cli.rebalance_plan(nodes, shards)
    assert spread(loads(nodes, applied(shards, plan["moves"]))) <= 1
    # The fewest moves: the primaries above the target counts (the top nodes keep the remainder).
    before = sorted(loads(nodes, shards).values(), reverse=True)
    floor, extra = divmod(sum(before), len(before))
    targets = [floor + 1] * extra + [floor] * (len(before) - extra)
    assert len(plan["moves"]) == sum(max(0, b - t) for b, t in zip(before, targets))


def test_copies_in_the_way_can_take_more_moves_than_the_counts_say():
    # n1 holds three primaries, all with a copy on n2, so n2 can only be fed from n0:
    # the counts alone would say one move; two are needed, and two are planned.
    nodes = [{"node_id": n, "status": "HEALTHY"} for n in ("n0", "n1", "n2")]
    shards = [{"shard_id": "s00", "primary_node": "n0", "replica_nodes": [], "status": "HEALTHY"}] + [
        {"shard_id": "s0%d" % i, "primary_node": "n1", "replica_nodes": ["n2"], "status": "HEALTHY"}
        for i in (1, 2, 3)]
    plan = cluster_cli.rebalance_plan(nodes, shards)
    assert [(m["shard_id"], m["source_node"], m["target_node"]) for m in plan["moves"]] == [
        ("s00", "n0", "n2"), ("s01", "n1", "n0")]
    assert plan["after"] == {"n0": 1, "n1": 2, "n2": 1}


@given(cluster=clusters())
def test_balance_by_vectors_never_widens_the_spread(cluster):
    nodes, shards = cluster
    plan = cluster_cli.rebalance_plan(nodes, shards, "vectors")
    legal(nodes, shards, plan["moves"])
    after = applied(shards, plan["moves"])
    assert spread(loads(nodes, after, "vectors")) <= spread(loads(nodes, shards, "vectors"))
    assert cluster_cli.rebalance_plan(nodes, after, "vectors")["moves"] == []


@given(cluster=clusters(), seed=st.integers(0, 1000))
def test_the_same_cluster_gives_the_same_plan(cluster, seed):
    nodes, shards = cluster
    shuffled_nodes, shuffled_shards = list(nodes), list(shards)
    random.Random(seed).shuffle(shuffled_nodes)
    random.Random(seed).shuffle(shuffled_shards)
    for by in cluster_cli.BALANCE_BY:
        assert cluster_cli.rebalance_plan(nodes, shards, by) == \
            cluster_cli.rebalance_plan(shuffled_nodes, shuffled_shards, by)


@given(cluster=clusters(), which=st.integers(0, 7))
def test_a_drain_moves_every_primary_off_the_node_or_says_why_not(cluster, which):
    nodes, shards = cluster
    node_id = nodes[which % len(nodes)]["node_id"]
    try:
        plan = cluster_cli.drain_plan(nodes, shards, node_id)
    except cluster_cli.ClusterError as exc:
        stuck = exc.shown[0]["skipped"]
        assert stuck and all(s["reason"] for s in stuck)
        return
    legal_targets = healthy(nodes) - {node_id}
    by_shard = {s["shard_id"]: s for s in shards}
    for move in plan["moves"]:
        shard = by_shard[move["shard_id"]]
        assert move["target_node"] in legal_targets
        assert move["target_node"] not in [shard["primary_node"]] + shard["replica_nodes"]
    after = applied(shards, plan["moves"])
    assert not [s for s in after if s["primary_node"] == node_id]
    assert cluster_cli.drain_plan(nodes, after, node_id)["moves"] == []  # a drained node drains to nothing


def test_an_unknown_balance_is_an_input_error():
    with pytest.raises(cluster_cli.InvalidInput):
        cluster_cli.rebalance_plan([], [], "bytes")
