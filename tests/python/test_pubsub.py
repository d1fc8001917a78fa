"""Pub/Sub: the exact replies and messages of both protocols compared with a real
redis-server, many subscribers spread over cores, and a subscriber that never reads being cut
off by the pubsub output limit instead of buffered without bound."""

import time

import pytest
import redis

from conftest import RawConn


def session(target, protocol):
    conn = RawConn(target.raw())
    if protocol == 3:
        conn.call("HELLO", "3")
    return conn


SCRIPTS = [
    # (subscriber commands, publisher commands, how many pushes the subscriber then reads)
    ([["SUBSCRIBE", "a", "b", "a"]], [["PUBLISH", "a", "hello"], ["PUBLISH", "c", "nobody"]], 1),
    ([["PSUBSCRIBE", "n*", "news.?"]], [["PUBLISH", "news.1", "x"]], 2),
    ([["SUBSCRIBE", "news.1"], ["PSUBSCRIBE", "news.*"]], [["PUBLISH", "news.1", "both"]], 2),
    ([["SSUBSCRIBE", "shard"]], [["SPUBLISH", "shard", "s"], ["PUBLISH", "shard", "not for shards"]], 1),
    ([["SUBSCRIBE", "a"], ["UNSUBSCRIBE"], ["UNSUBSCRIBE"]], [["PUBLISH", "a", "gone"]], 0),
    ([["SUBSCRIBE", "a", "b"], ["UNSUBSCRIBE", "b", "zzz"], ["PSUBSCRIBE", "p"], ["PUNSUBSCRIBE"]],
     [["PUBLISH", "a", "still"]], 1),
    ([["SUBSCRIBE", "a"], ["PING"], ["PING", "hi"], ["GET", "k"]], [], 0),
]


@pytest.mark.parametrize("protocol", [2, 3])
@pytest.mark.parametrize("script", SCRIPTS, ids=lambda s: " | ".join(" ".join(c) for c in s[0]))
def test_same_replies_and_messages_as_redis(server, reference, script, protocol):
    subscribe, publish, pushes = script
    seen = []
    for target in (server, reference):
        sub = session(target, protocol)
        pub = session(target, protocol)
        replies = []
        for command in subscribe:
            sub.send(*command)
        # Each (un)subscribe names one confirmation per channel; read them all back.
        for command in subscribe:
            name = command[0].upper()
            if name in ("SUBSCRIBE", "PSUBSCRIBE", "SSUBSCRIBE"):
                replies += [sub.read() for _ in command[1:]]
            elif name in ("UNSUBSCRIBE", "PUNSUBSCRIBE", "SUNSUBSCRIBE") and len(command) > 1:
                replies += [sub.read() for _ in command[1:]]
            else:
                replies.append(sub.read())
        for command in publish:
            replies.append(pub.call(*command))
        # Messages matching several patterns arrive in no promised order.
        replies += sorted((sub.read() for _ in range(pushes)), key=repr)
        replies.append(pub.call("PUBSUB", "NUMSUB", "a", "news.1"))
        replies.append(pub.call("PUBSUB", "NUMPAT"))
        seen.append(replies)
        sub.sock.close()
        pub.sock.close()
        time.sleep(0.05)  # let both servers drop the closed subscriber before the next case
    assert seen[0] == seen[1]


def test_publish_reaches_subscribers_on_every_core(server):
    pub = server.client(decode_responses=True)
    listeners = []
    for _ in range(12):
        p = server.client(decode_responses=True).pubsub()
        p.subscribe("fanout")
        listeners.append(p)
    for p in listeners:
        assert p.get_message(timeout=5)["type"] == "subscribe"
    assert pub.publish("fanout", "x") == 12
    for p in listeners:
        message = p.get_message(timeout=5)
        assert message["data"] == "x" and message["channel"] == "fanout"
    assert pub.pubsub_numsub("fanout") == [("fanout", 12)]
    assert "fanout" in pub.pubsub_channels()
    for p in listeners:
        p.close()
    deadline = time.time() + 5
    while time.time() < deadline and pub.pubsub_numsub("fanout") != [("fanout", 0)]:
        time.sleep(0.05)
    assert pub.pubsub_numsub("fanout") == [("fanout", 0)]
    pub.close()


def test_a_subscriber_that_never_reads_is_cut_off(server):
    r = server.client()
    r.config_set("client-output-buffer-limit", "pubsub 1mb 0 0")
    try:
        time.sleep(0.3)  # cores pick the new limit up on their next tick
        s = server.raw()
        s.sendall(b"CLIENT SETNAME slowsub\r\n")
        assert s.recv(5) == b"+OK\r\n"
        s.sendall(b"SUBSCRIBE firehose\r\n")
        time.sleep(0.2)
        assert "name=slowsub" in r.execute_command("CLIENT", "LIST").decode()
        payload = b"m" * 65536
        for _ in range(400):  # 25 MB: far past the kernel's buffers and the 1 MB limit
            r.publish("firehose", payload)
            if "name=slowsub" not in r.execute_command("CLIENT", "LIST").decode():
                break
        assert "name=slowsub" not in r.execute_command("CLIENT", "LIST").decode()
        assert r.ping()
        s.close()
    finally:
        r.config_set("client-output-buffer-limit", "pubsub 32mb 8mb 60")
