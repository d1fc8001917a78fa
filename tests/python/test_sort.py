"""SORT and SORT_RO against a real redis-server: the same data and requests on both servers
must get the same replies, stored lists and errors. BY and GET patterns name keys that the
server under test spreads over its cores."""

import random

import redis

SETUP = [
    ["RPUSH", "nums", "3", "1", "2", "10", "-4.5", "1e2", "7"],
    ["RPUSH", "words", "pear", "apple", "fig", "banana", "apple"],
    ["SADD", "tags", "b", "a", "d", "c"],
    ["SADD", "ids", "5", "3", "9", "1"],
    ["ZADD", "board", "3", "carol", "1", "alice", "2", "bob", "5", "dave"],
    ["RPUSH", "bad", "1", "x", "3"],
    ["SET", "str", "v"],
]
# Weights and names the patterns point at.
for i, user in enumerate(["alice", "bob", "carol", "dave"]):
    SETUP.append(["SET", f"weight_{user}", str((i * 7) % 5)])
    SETUP.append(["HSET", f"user:{user}", "age", str(20 + (i * 13) % 17), "city", ["Oslo", "Rome", "Lima", "Kiev"][i]])
for n in ["3", "1", "2", "10", "-4.5", "1e2", "7", "5", "9"]:
    SETUP.append(["SET", f"w_{n}", str(random.Random(n).randint(0, 3))])
    SETUP.append(["SET", f"name_{n}", f"n{n}"])

REQUESTS = [
    ["SORT", "nums"], ["SORT", "nums", "DESC"], ["SORT", "nums", "LIMIT", "1", "3"],
    ["SORT", "nums", "LIMIT", "-2", "3"], ["SORT", "nums", "LIMIT", "5", "-1"], ["SORT", "nums", "LIMIT", "50", "2"],
    ["SORT", "nums", "LIMIT", "0", "0"], ["SORT", "words", "ALPHA"], ["SORT", "words", "ALPHA", "DESC", "LIMIT", "0", "2"],
    ["SORT", "words"], ["SORT", "tags", "ALPHA"], ["SORT", "ids"], ["SORT", "board"], ["SORT", "board", "ALPHA"],
    ["SORT", "board", "BY", "nosort"], ["SORT", "board", "BY", "nosort", "DESC"],
    ["SORT", "board", "BY", "nosort", "LIMIT", "1", "2"], ["SORT", "nums", "BY", "nosort"],
    ["SORT", "board", "BY", "weight_*"], ["SORT", "board", "BY", "weight_*", "DESC", "GET", "#", "GET", "weight_*"],
    ["SORT", "board", "BY", "user:*->age", "GET", "user:*->city"], ["SORT", "board", "BY", "user:*->city", "ALPHA"],
    ["SORT", "board", "BY", "user:*->nope", "GET", "#"], ["SORT", "board", "GET", "missing_*", "GET", "#"],
    ["SORT", "nums", "BY", "w_*", "GET", "name_*", "GET", "#"], ["SORT", "ids", "BY", "w_*", "GET", "name_*"],
    ["SORT_RO", "nums", "DESC"], ["SORT_RO", "board", "BY", "weight_*", "GET", "user:*->age"],
    ["SORT", "nosuch"], ["SORT", "bad"], ["SORT", "bad", "ALPHA"], ["SORT", "str"], ["SORT", "nums", "LIMIT", "x", "1"],
    ["SORT", "nums", "BOGUS"], ["SORT_RO", "nums", "STORE", "dst"], ["SORT", "nums", "LIMIT", "1"],
    ["SORT", "nums", "STORE", "dst1"], ["LRANGE", "dst1", "0", "-1"],
    ["SORT", "board", "BY", "weight_*", "GET", "user:*->city", "GET", "nope_*", "STORE", "dst2"], ["LRANGE", "dst2", "0", "-1"],
    ["SORT", "tags", "BY", "nosort", "STORE", "dst3"], ["LRANGE", "dst3", "0", "-1"],
    ["SORT", "nosuch", "STORE", "dst1"], ["EXISTS", "dst1"], ["SORT", "nums", "STORE", "str"], ["TYPE", "str"],
]


def run(client, command):
    try:
        return client.execute_command(*command)
    except redis.ResponseError as e:
        return ("error", str(e))


def test_sort_matches_redis(server, reference):
    ours = server.client(decode_responses=True)
    theirs = reference.client(decode_responses=True)
    for client in (ours, theirs):
        client.response_callbacks.clear()
        client.flushall()
        for command in SETUP:
            client.execute_command(*command)
    for command in REQUESTS:
        assert run(ours, command) == run(theirs, command), command
    ours.close()
    theirs.close()


def test_sort_inside_a_transaction(server, reference):
    for srv in (server, reference):
        client = srv.client(decode_responses=True)
        client.flushall()
        pipe = client.pipeline(transaction=True)
        pipe.rpush("l", 3, 1, 2)
        pipe.sort("l", desc=True)
        pipe.sort("l", store="out")
        pipe.lrange("out", 0, -1)
        pipe.mset({"w_1": 3, "w_2": 1, "w_3": 2})
        pipe.sort("l", by="w_*", get=["#", "w_*"])
        assert pipe.execute() == [3, ["3", "2", "1"], 3, ["1", "2", "3"], True,
                                  ["2", "1", "3", "2", "1", "3"]], srv.kind
        client.close()
