"""Property-based: the rebalance and drain planners over random clusters."""
import itertools
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

import cluster_cli


NODE_STATUSES = ["HEALTHY"] * 6 + ["JOINING", "UNREACHABLE", "DEGRADED"]
SHARD_STATUSES = ["HEALTHY"] * 8 + ["MIGRATING", "UNDER_REPLICATED"]


@st.composite
def clusters(draw, max_nodes=8, max_shards=40):
    """(nodes, shards): up to 8 nodes (most HEALTHY), up to 40 shards, each with 0-2 replicas. A shard is
    drawn whole, as one tuple (its primary, its replicas as picks among the other nodes, its vectors, its
    status): half the time of drawing each value on its own, for the same clusters."""
    count = draw(st.integers(1, max_nodes))
    statuses = draw(st.lists(st.sampled_from(NODE_STATUSES), min_size=count, max_size=count))
    nodes = [{"node_id": "n%d" % i, "status": status} for i, status in enumerate(statuses)]
    picks = st.lists(st.integers(0, max(count - 2, 0)), unique=True, max_size=min(2, count - 1))
    size = draw(st.integers(0, max_shards))
    drawn = draw(st.lists(st.tuples(st.integers(0, count - 1), picks, st.integers(0, 1000),
                                    st.sampled_from(SHARD_STATUSES)), min_size=size, max_size=size))
    shards = []
    for i, (primary, picked, vectors, status) in enumerate(drawn):
        others = [n for n in range(count) if n != primary]
        replicas = [others[p] for p in picked]  # distinct, never the primary
        shards.append({"shard_id": "s%02d" % i, "primary_node": "n%d" % primary,
                       "replica_nodes": ["n%d" % r for r in replicas], "vector_count": vectors, "status": status})
    return nodes, shards


@st.composite
def unconstrained(draw):
    """Every node and shard HEALTHY, and no replica in the way of any move."""
    nodes, shards = draw(clusters())
    return ([dict(n, status="HEALTHY") for n in nodes],
            [dict(s, status="HEALTHY", replica_nodes=[]) for s in shards])


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


def legal(nodes, shards, moves, in_flight=()):
    by_shard = {s["shard_id"]: s for s in shards}
    assert len({m["shard_id"] for m in moves}) == len(moves)  # each shard at most once
    for move in moves:
        shard = by_shard[move["shard_id"]]
        assert shard["status"] in ("HEALTHY", "UNDER_REPLICATED") and shard["shard_id"] not in in_flight
        assert move["source_node"] == shard["primary_node"] in healthy(nodes)
        assert move["target_node"] in healthy(nodes)  # only HEALTHY targets
        assert move["target_node"] not in [shard["primary_node"]] + shard["replica_nodes"]  # holds no copy


def loads(nodes, shards, by="shards", in_flight=None):
    """Each HEALTHY node's primaries (or their vectors), a MIGRATING shard counted where it goes."""
    load = {n: 0 for n in healthy(nodes)}
    for shard in shards:
        where = (in_flight or {}).get(shard["shard_id"], shard["primary_node"])
        if where in load:
            load[where] += 1 if by == "shards" else shard["vector_count"]
    return load


def spread(load):
    return max(load.values()) - min(load.values()) if load else 0


def squares(load):
    return sum(v * v for v in load.values())


def every_plan(nodes, shards, free, targets, must_move=False):
    """Every assignment of the free shards to the nodes each may end on, as move lists."""
    choices = []
    for shard in free:
        held = [shard["primary_node"]] + shard["replica_nodes"]
        ends = sorted(t for t in targets if t not in held)
        choices.append(ends if must_move else [shard["primary_node"]] + ends)
    for ends in itertools.product(*choices):
        yield [{"shard_id": s["shard_id"], "source_node": s["primary_node"], "target_node": end}
               for s, end in zip(free, ends) if end != s["primary_node"]]


def size_of_search(free, targets):
    count = 1
    for _ in free:
        count *= len(targets) + 1
    return count


def drain_or_why(nodes, shards, node_id):
    """The drain plan; each primary it leaves as stuck truly has nowhere to go, and says why."""
    plan = cluster_cli.drain_plan(nodes, shards, node_id)
    targets = healthy(nodes) - {node_id}
    by_id = {s["shard_id"]: s for s in shards}
    for stuck in plan["stuck"]:
        shard = by_id[stuck["shard_id"]]
        assert stuck["reason"] and (shard["status"] not in ("HEALTHY", "UNDER_REPLICATED") or not (
            targets - {shard["primary_node"]} - set(shard["replica_nodes"]))), stuck
    return plan


@st.composite
def small_clusters(draw):
    """Clusters small enough to search exhaustively, copies often in the way, some shards in flight."""
    nodes, shards = draw(clusters(max_nodes=5, max_shards=9))
    migrating = [s["shard_id"] for s in shards if s["status"] == "MIGRATING"]
    in_flight = {}
    for shard_id in migrating:
        in_flight[shard_id] = draw(st.sampled_from([n["node_id"] for n in nodes]))
    return nodes, shards, in_flight


@given(cluster=small_clusters())
def test_rebalance_is_as_even_as_any_plan_and_in_the_fewest_moves(cluster):
    nodes, shards, in_flight = cluster
    plan = cluster_cli.rebalance_plan(nodes, shards, in_flight=in_flight)
    legal(nodes, shards, plan["moves"], in_flight)
    ours = loads(nodes, applied(shards, plan["moves"]), in_flight=in_flight)
    primaries = {n["node_id"]: 0 for n in nodes}
    for shard in applied(shards, plan["moves"]):  # a shard in flight counts where it is going, as plans count it
        at = in_flight.get(shard["shard_id"]) or shard["primary_node"]
        primaries[at] = primaries.get(at, 0) + 1
    assert plan["after"] == primaries
    targets = healthy(nodes)
    free = [s for s in shards if s["status"] in ("HEALTHY", "UNDER_REPLICATED") and s["primary_node"] in targets
            and s["shard_id"] not in in_flight]
    if size_of_search(free, targets) > 50000:
        return
    best = min((squares(loads(nodes, applied(shards, moves), in_flight=in_flight)), len(moves))
               for moves in every_plan(nodes, shards, free, targets))
    assert (squares(ours), len(plan["moves"])) == best
    least_spread = min(spread(loads(nodes, applied(shards, moves), in_flight=in_flight))
                       for moves in every_plan(nodes, shards, free, targets))
    assert spread(ours) == least_spread  # the least square sum is also the least spread
    assert cluster_cli.rebalance_plan(nodes, applied(shards, plan["moves"]), in_flight=in_flight)["moves"] == []


@given(cluster=small_clusters(), which=st.integers(0, 4))
def test_a_drain_leaves_the_rest_as_even_as_any_drain_could(cluster, which):
    nodes, shards, _ = cluster
    node_id = nodes[which % len(nodes)]["node_id"]
    plan = drain_or_why(nodes, shards, node_id)
    targets = healthy(nodes) - {node_id}
    if node_id not in healthy(nodes):
        return
    stuck = {s["shard_id"] for s in plan["stuck"]}
    free = [s for s in shards if s["primary_node"] == node_id and s["status"] != "MIGRATING"
            and s["shard_id"] not in stuck]  # the rest moves, every one of them
    assert sorted(m["shard_id"] for m in plan["moves"]) == sorted(s["shard_id"] for s in free)
    legal(nodes, shards, plan["moves"])
    if size_of_search(free, targets) > 50000:
        return
    rest = lambda load: {n: c for n, c in load.items() if n != node_id}  # noqa: E731
    best = min(squares(rest(loads(nodes, applied(shards, moves)))) for moves in
               every_plan(nodes, shards, free, targets, must_move=True))
    assert squares(rest(loads(nodes, applied(shards, plan["moves"])))) == best


def test_a_chain_through_a_third_node_is_found():
    # A, B, C hold 0, 2, 1 primaries; B's can only go to C (each has a copy on A), C's can go to A:
    # C -> A and B -> C balance it; no single move from the fullest to the emptiest node exists.
    nodes = [{"node_id": n, "status": "HEALTHY"} for n in ("A", "B", "C")]
    shards = [{"shard_id": "s1", "primary_node": "B", "replica_nodes": ["A"], "status": "HEALTHY"},
              {"shard_id": "s2", "primary_node": "B", "replica_nodes": ["A"], "status": "HEALTHY"},
              {"shard_id": "s3", "primary_node": "C", "replica_nodes": [], "status": "HEALTHY"}]
    plan = cluster_cli.rebalance_plan(nodes, shards)
    assert [(m["shard_id"], m["source_node"], m["target_node"]) for m in plan["moves"]] == [
        ("s1", "B", "C"), ("s3", "C", "A")]
    assert plan["after"] == {"A": 1, "B": 1, "C": 1}


def test_copies_in_the_way_are_named_when_balance_is_blocked():
    # Both of n1's primaries have a copy on n2, the only node below its share: spread 2 is the least.
    nodes = [{"node_id": n, "status": "HEALTHY"} for n in ("n1", "n2")]
    shards = [{"shard_id": "s%d" % i, "primary_node": "n1", "replica_nodes": ["n2"], "status": "HEALTHY"}
              for i in (1, 2)]
    plan = cluster_cli.rebalance_plan(nodes, shards)
    assert plan["moves"] == []
    assert plan["blocked"] == [{"node_id": "n1", "primaries": 2, "could_hold": 1, "reason":
                                "each of its 2 movable primaries has a copy on n2, the node with two or more "
                                "primaries fewer"}]


def test_ten_nodes_with_replicas_on_the_next_two_balance_exactly():
    # 10,000 shards, replicas on the next two nodes; n0 holds 1,001 and n1 999. Every primary on n0
    # has a copy on n1: no move from the fullest to the emptiest exists; a chain of two does it.
    names = ["n%d" % i for i in range(10)]
    nodes = [{"node_id": n, "status": "HEALTHY"} for n in names]
    homes = [i % 10 for i in range(10000)]
    homes[1] = 0  # one of n1's primaries is on n0 instead
    shards = [{"shard_id": "s%05d" % i, "primary_node": names[home], "status": "HEALTHY",
               "replica_nodes": [names[(home + 1) % 10], names[(home + 2) % 10]]} for i, home in enumerate(homes)]
    assert sorted(loads(nodes, shards).values()) == [999] + [1000] * 8 + [1001]
    plan = cluster_cli.rebalance_plan(nodes, shards)
    assert spread(loads(nodes, applied(shards, plan["moves"]))) == 0
    assert len(plan["moves"]) == 2


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
    assert all(m["vector_count"] > 0 for m in plan["moves"])  # an empty shard changes nothing: never moved
    after = applied(shards, plan["moves"])
    assert spread(loads(nodes, after, "vectors")) <= spread(loads(nodes, shards, "vectors"))
    assert squares(loads(nodes, after, "vectors")) <= squares(loads(nodes, shards, "vectors"))
    assert {n: v for n, v in plan["vectors_after"].items() if n in healthy(nodes)} == loads(nodes, after, "vectors")
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
    plan = drain_or_why(nodes, shards, node_id)
    legal_targets = healthy(nodes) - {node_id}
    by_shard = {s["shard_id"]: s for s in shards}
    for move in plan["moves"]:
        shard = by_shard[move["shard_id"]]
        assert move["target_node"] in legal_targets
        assert move["target_node"] not in [shard["primary_node"]] + shard["replica_nodes"]
    after = applied(shards, plan["moves"])
    left = {s["shard_id"] for s in plan["skipped"]} | {s["shard_id"] for s in plan["in_flight"]}
    assert {s["shard_id"] for s in after if s["primary_node"] == node_id} == left  # each said why
    assert cluster_cli.drain_plan(nodes, after, node_id)["moves"] == []  # a drained node drains to nothing


def test_an_unknown_balance_is_an_input_error():
    with pytest.raises(cluster_cli.InvalidInput):
        cluster_cli.rebalance_plan([], [], "bytes")


@given(cluster=small_clusters())
def test_blocked_names_copies_exactly_when_they_cost_balance(cluster):
    # Balance with the copies honoured (exhaustive search) against balance with them ignored (any free
    # shard to any HEALTHY node: the least-loaded first, which is optimal for equal weights).
    nodes, shards, in_flight = cluster
    plan = cluster_cli.rebalance_plan(nodes, shards, in_flight=in_flight)
    targets = healthy(nodes)
    free = [s for s in shards if s["status"] in ("HEALTHY", "UNDER_REPLICATED") and s["primary_node"] in targets
            and s["shard_id"] not in in_flight]
    if not targets or size_of_search(free, targets) > 50000:
        return
    free_ids = {s["shard_id"] for s in free}
    ignored = loads(nodes, [s for s in shards if s["shard_id"] not in free_ids], in_flight=in_flight)
    for _ in free:
        ignored[min(ignored, key=lambda n: (ignored[n], n))] += 1
    honoured = min(squares(loads(nodes, applied(shards, moves), in_flight=in_flight))
                   for moves in every_plan(nodes, shards, free, targets))
    assert bool(plan["blocked"]) == (honoured > squares(ignored)), plan["blocked"]
    by_shard = {s["shard_id"]: s for s in shards}
    after = plan["after"]
    for entry in plan["blocked"]:  # each named node and copy is literally in the way
        mine = [m["shard_id"] for m in plan["moves"] if m["target_node"] == entry["node_id"]] + [
            s["shard_id"] for s in free if s["primary_node"] == entry["node_id"] and s["shard_id"] not in
            {m["shard_id"] for m in plan["moves"]}]
        if " has a copy on " not in entry["reason"]:
            assert not mine  # "its primaries cannot move": none of them is free
            continue
        named = entry["reason"].split(" has a copy on ")[1].split(", the node")[0].split(", every node")[0].split(", ")
        for node in named:
            assert after[node] <= after[entry["node_id"]] - 2
            assert all(node in [by_shard[s]["primary_node"]] + by_shard[s]["replica_nodes"] for s in mine), (
                entry, node)
