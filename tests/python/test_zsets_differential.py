"""Sorted sets against a real redis-server: random command sequences, the same on both
servers, must get the same replies and errors.

Scores are drawn from values whose text is the same in Redis 7.0's `%.17g` and in the
shortest round-trip form (halves, quarters, infinities), so replies compare byte for byte.
Bulk ZADDs of hundreds of members cross `zset-max-listpack-entries` and long members cross
`zset-max-listpack-value`, so both forms and the conversion are exercised. Lex commands run
on a key whose members all score 0 (Redis leaves lex ranges over mixed scores undefined).
"""

import random

import pytest
import redis

SCORE_KEYS = ["z", "z2", "z3", "str", "s", "nosuch"]
LEX_KEYS = ["lex", "str", "nolex"]
MEMBERS = ["a", "b", "c", "d", "m1", "m2", "1", "-2", "", "x" * 70, "e" * 10]
SCORES = ["0", "1", "-1", "2", "1.5", "-2.25", "10", "100.5", "inf", "-inf", "+inf", "3"]
BOUNDS = ["0", "1", "(1", "-inf", "+inf", "(2", "1.5", "(-inf", "10", "x", "(", "-1"]
LEX_BOUNDS = ["-", "+", "[a", "(a", "[c", "(m", "[m2", "(", "a", "[", "[e"]
INDEXES = ["0", "1", "-1", "2", "-3", "5", "100", "-100", "x"]


def pick(rng, pool):
    return rng.choice(pool)


def score_pairs(rng, n):
    pairs = []
    for _ in range(n):
        pairs += [pick(rng, SCORES), pick(rng, MEMBERS)]
    return pairs


def bulk_pairs(rng, n):
    pairs = []
    for _ in range(n):
        pairs += [str(rng.randint(-50, 50) / 2), f"bulk{rng.randint(0, n * 2)}"]
    return pairs


def range_options(rng, allow_scores=True):
    groups = []
    if allow_scores and rng.random() < 0.4:
        groups.append(["WITHSCORES"])
    if rng.random() < 0.4:
        groups.append(["LIMIT", pick(rng, ["0", "1", "-1", "2"]), pick(rng, ["1", "2", "-1", "0", "5"])])
    rng.shuffle(groups)
    return sum(groups, [])


def write_command(rng):
    k = pick(rng, SCORE_KEYS)
    choice = rng.randrange(14)
    if choice == 0:
        return ["ZADD", k] + bulk_pairs(rng, rng.choice([5, 150]))
    if choice == 1:
        flags = rng.sample(["NX", "XX", "GT", "LT", "CH", "INCR"], rng.randint(0, 2))
        return ["ZADD", k] + flags + score_pairs(rng, rng.randint(1, 3))
    if choice == 2:
        return ["ZADD", k] + score_pairs(rng, rng.randint(1, 4))
    return rng.choice([
        ["ZINCRBY", k, pick(rng, ["1", "-2", "0.5", "2.5", "inf", "-inf", "x"]), pick(rng, MEMBERS)],
        ["ZREM", k] + rng.sample(MEMBERS, rng.randint(1, 3)),
        ["ZREMRANGEBYRANK", k, pick(rng, INDEXES), pick(rng, INDEXES)],
        ["ZREMRANGEBYSCORE", k, pick(rng, BOUNDS), pick(rng, BOUNDS)],
        ["ZPOPMIN", k] + rng.choice([[], ["2"], ["0"], ["-1"], ["7"]]),
        ["ZPOPMAX", k] + rng.choice([[], ["3"], ["x"]]),
        ["ZMPOP", pick(rng, ["1", "2", "0"]), k, pick(rng, SCORE_KEYS), pick(rng, ["MIN", "MAX", "UP"])]
        + rng.choice([[], ["COUNT", "2"], ["COUNT", "0"]]),
        ["ZRANGESTORE", pick(rng, ["dst", "z3"]), k, pick(rng, INDEXES), pick(rng, INDEXES)],
        ["ZRANGESTORE", pick(rng, ["dst", "z3"]), k, pick(rng, BOUNDS), pick(rng, BOUNDS), "BYSCORE"]
        + rng.choice([[], ["REV"], ["LIMIT", "1", "2"]]),
        [pick(rng, ["ZUNIONSTORE", "ZINTERSTORE", "ZDIFFSTORE"]), pick(rng, ["dst", "z3"]), "2", k,
         pick(rng, SCORE_KEYS)] + combine_options(rng, store=True),
        ["SADD", "s", pick(rng, MEMBERS)],
    ])


def combine_options(rng, store=False):
    options = []
    if rng.random() < 0.3:
        options += ["WEIGHTS", pick(rng, ["2", "0.5", "-1", "x"]), pick(rng, ["1", "3"])]
    if rng.random() < 0.3:
        options += ["AGGREGATE", pick(rng, ["SUM", "MIN", "MAX", "AVG"])]
    if not store and rng.random() < 0.5:
        options.append("WITHSCORES")
    return options


def read_command(rng):
    k = pick(rng, SCORE_KEYS)
    by_score = [pick(rng, BOUNDS), pick(rng, BOUNDS)]
    return rng.choice([
        ["ZCARD", k],
        ["ZSCORE", k, pick(rng, MEMBERS)],
        ["ZMSCORE", k] + rng.sample(MEMBERS, 3),
        ["ZRANK", k, pick(rng, MEMBERS)],
        ["ZREVRANK", k, pick(rng, MEMBERS)],
        ["ZCOUNT", k] + by_score,
        ["ZRANGE", k, pick(rng, INDEXES), pick(rng, INDEXES)] + rng.choice([[], ["WITHSCORES"], ["REV"], ["LIMIT", "0", "1"]]),
        ["ZRANGE", k] + by_score + ["BYSCORE"] + rng.choice([[], ["REV"]]) + range_options(rng),
        ["ZREVRANGE", k, pick(rng, INDEXES), pick(rng, INDEXES)] + rng.choice([[], ["WITHSCORES"]]),
        ["ZRANGEBYSCORE", k] + by_score + range_options(rng),
        ["ZREVRANGEBYSCORE", k] + by_score + range_options(rng),
        ["ZUNION", "2", k, pick(rng, SCORE_KEYS)] + combine_options(rng),
        ["ZINTER", "2", k, pick(rng, SCORE_KEYS)] + combine_options(rng),
        ["ZDIFF", "2", k, pick(rng, SCORE_KEYS)] + rng.choice([[], ["WITHSCORES"], ["WEIGHTS", "1", "2"]]),
        ["ZINTERCARD", pick(rng, ["2", "0", "3"]), k, pick(rng, SCORE_KEYS)] + rng.choice([[], ["LIMIT", "1"], ["LIMIT", "-1"]]),
        ["ZUNION", pick(rng, ["0", "5", "x"]), k],
        ["ZRANGE", k, "0", "-1", "WITHSCORES"],
        ["TYPE", k],
    ])


def lex_command(rng):
    k = pick(rng, LEX_KEYS)
    bounds = [pick(rng, LEX_BOUNDS), pick(rng, LEX_BOUNDS)]
    return rng.choice([
        ["ZADD", "lex", "0", pick(rng, MEMBERS)],
        ["ZADD", "lex"] + sum([["0", f"w{rng.randint(0, 300)}"] for _ in range(rng.choice([3, 140]))], []),
        ["ZLEXCOUNT", k] + bounds,
        ["ZRANGEBYLEX", k] + bounds + range_options(rng, allow_scores=False),
        ["ZREVRANGEBYLEX", k] + bounds + range_options(rng, allow_scores=False),
        ["ZRANGE", k] + bounds + ["BYLEX"] + rng.choice([[], ["REV"], ["WITHSCORES"], ["LIMIT", "1", "3"]]),
        ["ZREMRANGEBYLEX", k] + bounds,
        ["ZRANGE", k, "0", "-1"],
    ])


def raw(client):
    """The client with redis-py's reply conversions off, so replies compare as sent."""
    client.response_callbacks.clear()
    return client


def run(client, command):
    try:
        reply = client.execute_command(*command)
    except redis.ResponseError as e:
        return ("error", str(e))
    if command[0] == "ZSCAN" and isinstance(reply, list):
        return sorted(reply[1])
    return reply


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5, 6])
def test_random_sorted_set_commands_match_redis(server, reference, seed):
    rng = random.Random(seed)
    ours = raw(server.client(decode_responses=False))
    theirs = raw(reference.client(decode_responses=False))
    ours.flushall()
    theirs.flushall()
    for c in (ours, theirs):
        c.set("str", "text")
    makers = [write_command, read_command, read_command, lex_command]
    for step in range(2500):
        command = rng.choice(makers)(rng)
        expected = run(theirs, command)
        got = run(ours, command)
        assert got == expected, f"step {step}: {command[:8]}"
    for key in SCORE_KEYS + LEX_KEYS + ["dst"]:
        for probe in (["TYPE", key], ["ZRANGE", key, "0", "-1", "WITHSCORES"]):
            assert run(ours, probe) == run(theirs, probe), probe
    ours.close()
    theirs.close()


def test_resp3_replies_nest_scores_as_redis_does(server, reference):
    ours = raw(server.client(decode_responses=True, protocol=3))
    theirs = raw(reference.client(decode_responses=True, protocol=3))
    script = [
        ["ZADD", "r", "1", "a", "2.5", "b", "3", "c"],
        ["ZRANGE", "r", "0", "-1", "WITHSCORES"],
        ["ZRANGEBYSCORE", "r", "-inf", "+inf", "WITHSCORES"],
        ["ZSCORE", "r", "b"],
        ["ZMSCORE", "r", "a", "nosuch"],
        ["ZINCRBY", "r", "1", "a"],
        ["ZPOPMIN", "r"],
        ["ZPOPMAX", "r", "1"],
        ["ZUNION", "1", "r", "WITHSCORES"],
        ["ZMPOP", "1", "r", "MIN"],
        ["ZMPOP", "1", "r", "MIN"],
    ]
    for c in (ours, theirs):
        c.flushall()
    for command in script:
        assert run(ours, command) == run(theirs, command), command
    ours.close()
    theirs.close()


def test_large_sorted_set_ranks_and_ranges_match_redis(server, reference):
    """Ten thousand members with colliding scores: every rank, a spread of ranges, and
    removals in the middle, through the tree form."""
    rng = random.Random(11)
    ours = server.client(decode_responses=True)
    theirs = reference.client(decode_responses=True)
    members = {f"member:{i}": rng.randint(0, 2000) / 4 for i in range(10_000)}
    for c in (ours, theirs):
        c.flushall()
        pipe = c.pipeline(transaction=False)
        items = list(members.items())
        for i in range(0, len(items), 500):
            pipe.zadd("big", dict(items[i:i + 500]))
        pipe.execute()
    assert ours.object("encoding", "big") == "skiplist"
    for _ in range(3):
        assert ours.zrange("big", 0, -1, withscores=True) == theirs.zrange("big", 0, -1, withscores=True)
        for member in rng.sample(sorted(members), 200):
            assert ours.zrank("big", member) == theirs.zrank("big", member)
            assert ours.zrevrank("big", member) == theirs.zrevrank("big", member)
        for _ in range(50):
            lo, hi = sorted([rng.randint(0, 500), rng.randint(0, 500)])
            assert ours.zcount("big", lo, f"({hi}") == theirs.zcount("big", lo, f"({hi}")
            assert ours.zrangebyscore("big", lo, hi, start=3, num=20) == theirs.zrangebyscore("big", lo, hi, start=3, num=20)
            assert ours.zrevrange("big", lo, hi) == theirs.zrevrange("big", lo, hi)
        doomed = rng.sample(sorted(members), 3000)
        for c in (ours, theirs):
            c.zrem("big", *doomed)
            c.zremrangebyrank("big", 100, 400)
            c.zadd("big", {m: s + 1 for m, s in list(members.items())[:500]})
    ours.close()
    theirs.close()


def test_scan_of_a_large_sorted_set_returns_every_member_despite_writes(server):
    c = server.client(decode_responses=True)
    c.flushall()
    members = {f"m{i}": i % 300 for i in range(3000)}
    c.zadd("z", members)
    rng = random.Random(3)
    removed, seen, cursor = set(), {}, 0
    while True:
        cursor, batch = c.zscan("z", cursor, count=40)
        seen.update(batch)
        gone = rng.sample(sorted(set(members) - removed), 10)
        c.zrem("z", *gone)
        removed.update(gone)
        c.zadd("z", {f"new{rng.randint(0, 10**6)}": rng.randint(0, 300)})
        if cursor == 0:
            break
    for member in set(members) - removed:
        assert seen.get(member) == members[member]
    c.close()


def test_random_members_come_from_the_sorted_set(server):
    c = server.client(decode_responses=True)
    c.flushall()
    for size in (3, 300):
        members = {f"m{i}": i for i in range(size)}
        c.delete("z")
        c.zadd("z", members)
        assert c.zrandmember("z") in members
        distinct = c.zrandmember("z", 5)
        assert len(distinct) == min(5, size) and set(distinct) <= set(members)
        repeated = c.zrandmember("z", -20, withscores=True)
        assert len(repeated) == 40
        for member, score in zip(repeated[::2], repeated[1::2]):
            assert float(score) == members[member]
    assert c.zrandmember("nosuch") is None and c.zrandmember("nosuch", 3) == []
    c.close()


def test_encodings_and_limits(server):
    c = server.client(decode_responses=True)
    c.flushall()
    try:
        c.zadd("z", {"a": 1})
        assert c.object("encoding", "z") == "listpack"
        c.zadd("z", {"x" * 65: 2})
        assert c.object("encoding", "z") == "skiplist"
        c.config_set("zset-max-ziplist-entries", 2)
        assert c.config_get("zset-max-listpack-entries") == {"zset-max-listpack-entries": "2"}
        c.zadd("y", {"a": 1, "b": 2})
        assert c.object("encoding", "y") == "listpack"
        c.zadd("y", {"c": 3})
        assert c.object("encoding", "y") == "skiplist"
        assert c.zrange("y", 0, -1) == ["a", "b", "c"]
        assert c.type("y") == "zset"
        c.rename("y", "moved")
        assert c.zrange("moved", 0, -1, withscores=True) == [("a", 1), ("b", 2), ("c", 3)]
    finally:
        c.config_set("zset-max-listpack-entries", 128)
    c.close()


def test_multi_key_sorted_set_commands_across_cores(server, reference):
    ours = raw(server.client(decode_responses=True))
    theirs = raw(reference.client(decode_responses=True))
    for c in (ours, theirs):
        c.flushall()
        for i in range(20):
            c.zadd(f"za{i}", {"x": 1, "y": 2, str(i): 3})
            c.zadd(f"zb{i}", {"y": 5, "z": 6, str(i + 1): 7})
    script = []
    for i in range(20):
        script += [
            ["ZUNIONSTORE", f"u{i}", "2", f"za{i}", f"zb{i}", "WEIGHTS", "2", "1"],
            ["ZINTERSTORE", f"i{i}", "2", f"za{i}", f"zb{i}", "AGGREGATE", "MAX"],
            ["ZDIFFSTORE", f"d{i}", "2", f"za{i}", f"zb{i}"],
            ["ZRANGESTORE", f"r{i}", f"zb{i}", "0", "1"],
            ["ZINTERCARD", "2", f"za{i}", f"zb{i}"],
            ["ZUNION", "2", f"za{i}", f"zb{i}", "WITHSCORES"],
            ["ZMPOP", "2", f"nosuch{i}", f"za{i}", "MAX", "COUNT", "2"],
            ["ZRANGE", f"u{i}", "0", "-1", "WITHSCORES"], ["ZRANGE", f"i{i}", "0", "-1", "WITHSCORES"],
            ["ZRANGE", f"d{i}", "0", "-1"], ["ZRANGE", f"r{i}", "0", "-1"], ["ZCARD", f"za{i}"],
        ]
    for command in script:
        assert run(ours, command) == run(theirs, command), command
    ours.close()
    theirs.close()
