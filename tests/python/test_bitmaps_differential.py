"""SETBIT, GETBIT, BITCOUNT, BITPOS, BITOP, BITFIELD and BITFIELD_RO against a real
redis-server: random command sequences, identical replies and errors, and the strings they
leave behind compared byte for byte."""

import random

import pytest
import redis

KEYS = ["b1", "b2", "{b}3", "h", "nosuch"]
OFFSETS = ["0", "1", "7", "8", "15", "63", "100", "1000", "-1", "x", "4294967296"]
TYPES = ["u1", "u8", "i8", "u16", "i16", "i5", "u63", "i64", "u64", "i0", "x8"]


def field_offset(rng):
    return rng.choice(["0", "3", "#1", "#2", "100", "-1", "#x"])


def command(rng):
    k = rng.choice(KEYS)
    choice = rng.randrange(12)
    if choice == 0:
        return ["SETBIT", k, rng.choice(OFFSETS), rng.choice(["0", "1", "2"])]
    if choice == 1:
        return ["GETBIT", k, rng.choice(OFFSETS)]
    if choice == 2:
        extra = rng.choice([[], ["0", "-1"], ["1", "3"], ["-2", "-1"], ["0"], ["5", "1"],
                            ["0", "20", "BIT"], ["3", "11", "BYTE"], ["0", "1", "NIBBLE"]])
        return ["BITCOUNT", k] + extra
    if choice == 3:
        extra = rng.choice([[], ["0"], ["1"], ["0", "-1"], ["2", "-1"], ["0", "9", "BIT"], ["-1"],
                            ["1", "0"], ["0", "0", "BYTE"]])
        return ["BITPOS", k, rng.choice(["0", "1", "2"])] + extra
    if choice == 4:
        op = rng.choice(["AND", "OR", "XOR", "NOT", "NAND"])
        n = 1 if op == "NOT" and rng.random() < 0.8 else rng.randint(1, 3)
        return ["BITOP", op, rng.choice(KEYS)] + [rng.choice(KEYS) for _ in range(n)]
    if choice == 5:
        return ["SET", k, rng.choice(["abc", "\xff\xff", "0", "12345", ""])]
    if choice == 6:
        return ["HSET", "h", "f", "v"]
    if choice in (7, 8):
        ops = []
        for _ in range(rng.randint(1, 3)):
            kind = rng.choice(["GET", "SET", "INCRBY", "OVERFLOW"])
            if kind == "OVERFLOW":
                ops += ["OVERFLOW", rng.choice(["WRAP", "SAT", "FAIL", "NOPE"])]
            elif kind == "GET":
                ops += ["GET", rng.choice(TYPES), field_offset(rng)]
            else:
                ops += [kind, rng.choice(TYPES), field_offset(rng),
                        rng.choice(["0", "1", "-1", "100", "127", "128", "-129", "255", "256", "x",
                                    "9223372036854775807", "-9223372036854775808"])]
        name = "BITFIELD_RO" if choice == 8 and rng.random() < 0.5 else "BITFIELD"
        return [name, k] + ops
    if choice == 9:
        return ["GET", k]
    if choice == 10:
        return ["STRLEN", k]
    return ["DEL", k]


def run(client, cmd):
    try:
        return client.execute_command(*cmd)
    except redis.ResponseError as e:
        return ("error", str(e))


@pytest.mark.parametrize("seed", range(6))
def test_random_bitmap_commands_match_redis(server, reference, seed):
    rng = random.Random(seed)
    ours = server.client()
    theirs = reference.client()
    ours.flushall()
    theirs.flushall()
    for step in range(2500):
        cmd = command(rng)
        assert run(ours, cmd) == run(theirs, cmd), f"step {step}: {cmd}"
    for key in KEYS:
        assert run(ours, ["GET", key]) == run(theirs, ["GET", key]), key
    ours.close()
    theirs.close()
