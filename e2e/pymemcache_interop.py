#!/usr/bin/python3
"""Real-client interop: pymemcache (Debian's python3-pymemcache) against running cache-nodes.

Usage: pymemcache_interop.py HOST:PORT [HOST:PORT ...]
The first server takes the single-node tests; all of them together back a HashClient.
"""
import sys
import unittest

from pymemcache.client.base import Client
from pymemcache.client.hash import HashClient

SERVERS = []


def hostport(s):
    host, port = s.rsplit(":", 1)
    return (host, int(port))


class KeepFlags:
    """A serde that hands back the stored client flags with the value."""

    def serialize(self, key, value):
        return value, 0

    def deserialize(self, key, value, flags):
        return value, flags


def node_stat(server, name):
    c = Client(hostport(server), connect_timeout=2, timeout=5)
    try:
        return c.stats()[name]
    finally:
        c.close()


def flush(server):
    c = Client(hostport(server), connect_timeout=2, timeout=5)
    try:
        c.flush_all(noreply=False)
    finally:
        c.close()


class SingleNode(unittest.TestCase):
    def setUp(self):
        self.c = Client(hostport(SERVERS[0]), connect_timeout=2, timeout=5, default_noreply=False)
        self.c.flush_all()

    def tearDown(self):
        self.c.close()

    def test_set_get_delete(self):
        self.assertTrue(self.c.set("route:proto=imap;user=alice@example.com", b"10.0.0.5:7143", expire=3600))
        self.assertEqual(self.c.get("route:proto=imap;user=alice@example.com"), b"10.0.0.5:7143")
        self.assertTrue(self.c.delete("route:proto=imap;user=alice@example.com"))
        self.assertIsNone(self.c.get("route:proto=imap;user=alice@example.com"))
        self.assertFalse(self.c.delete("route:proto=imap;user=alice@example.com"))

    def test_binary_values_and_flags(self):
        value = bytes(range(256)) * 40 + b"\r\nEND\r\n"
        self.assertTrue(self.c.set("bin", value))
        self.assertEqual(self.c.get("bin"), value)
        # Client flags travel with the value: pymemcache's serde relies on them.
        c = Client(hostport(SERVERS[0]), serde=KeepFlags(), connect_timeout=2, timeout=5)
        self.assertTrue(c.set("flagged", b"hi", flags=12345, noreply=False))
        self.assertEqual(c.get("flagged"), (b"hi", 12345))
        c.close()

    def test_add_replace_append_prepend(self):
        self.assertTrue(self.c.add("k", b"one"))
        self.assertFalse(self.c.add("k", b"two"))
        self.assertTrue(self.c.replace("k", b"mid"))
        self.assertFalse(self.c.replace("absent", b"x"))
        self.assertTrue(self.c.append("k", b">"))
        self.assertTrue(self.c.prepend("k", b"<"))
        self.assertEqual(self.c.get("k"), b"<mid>")
        self.assertFalse(self.c.append("absent", b"x"))

    def test_gets_cas(self):
        self.c.set("c", b"v1")
        value, cas = self.c.gets("c")
        self.assertEqual(value, b"v1")
        self.assertTrue(self.c.cas("c", b"v2", cas))
        self.assertFalse(self.c.cas("c", b"v3", cas))
        self.assertIsNone(self.c.cas("missing", b"v", b"1"))
        self.assertEqual(self.c.get("c"), b"v2")

    def test_incr_decr(self):
        self.c.set("n", b"10")
        self.assertEqual(self.c.incr("n", 5), 15)
        self.assertEqual(self.c.decr("n", 100), 0)
        self.c.set("n", b"18446744073709551615")
        self.assertEqual(self.c.incr("n", 2), 1)
        self.assertIsNone(self.c.incr("missing", 1))
        self.c.set("text", b"abc")
        with self.assertRaises(Exception):
            self.c.incr("text", 1)

    def test_touch_and_expiry(self):
        self.c.set("t", b"v", expire=100)
        self.assertTrue(self.c.touch("t", expire=200))
        self.assertFalse(self.c.touch("absent", expire=10))
        self.c.set("gone", b"v", expire=-1)
        self.assertIsNone(self.c.get("gone"))

    def test_multi_get_many_keys(self):
        keys = ["key:%05d" % i for i in range(3000)]
        for k in keys:
            self.c.set(k, k.encode(), noreply=True)
        got = self.c.get_many(keys + ["absent:%d" % i for i in range(100)])
        self.assertEqual(len(got), 3000)
        self.assertTrue(all(got[k] == k.encode() for k in keys))
        gets = self.c.gets_many(keys[:500])
        self.assertEqual(len(gets), 500)

    def test_noreply_pipeline(self):
        for i in range(500):
            self.c.set("nr:%d" % i, b"x" * i, noreply=True)
        self.c.delete("nr:0", noreply=True)
        self.assertEqual(self.c.get("nr:499"), b"x" * 499)
        self.assertIsNone(self.c.get("nr:0"))

    def test_stats_version(self):
        self.c.set("s", b"1")
        self.c.get("s")
        stats = self.c.stats()
        for field in (b"pid", b"uptime", b"curr_items", b"get_hits", b"limit_maxbytes", b"threads"):
            self.assertIn(field, stats)
        self.assertGreaterEqual(stats[b"get_hits"], 1)
        self.assertTrue(self.c.version().startswith(b"1.6"))

    def test_too_large_is_refused_cleanly(self):
        self.c.set("big", b"small")
        with self.assertRaises(Exception) as err:
            self.c.set("big", b"x" * (2 * 1024 * 1024))
        self.assertIn("too large", str(err.exception))
        self.assertIsNone(self.c.get("big"))
        self.assertTrue(self.c.set("after", b"ok"))


class Cluster(unittest.TestCase):
    def test_hash_client_spreads_and_reads_back(self):
        for server in SERVERS:
            flush(server)
        c = HashClient([hostport(s) for s in SERVERS], connect_timeout=2, timeout=5,
                       default_noreply=False)
        keys = ["alias:user=u%d@example.com;ip=10.1.2.3" % i for i in range(400)]
        for k in keys:
            self.assertTrue(c.set(k, b"10.0.0.%d:7143" % (len(k) % 250)))
        got = c.get_many(keys)
        self.assertEqual(len(got), len(keys))
        if len(SERVERS) > 1:
            per_node = [node_stat(s, b"curr_items") for s in SERVERS]
            self.assertEqual(sum(per_node), len(keys))
            self.assertTrue(all(n > 0 for n in per_node), per_node)
        c.close()


if __name__ == "__main__":
    SERVERS.extend(sys.argv[1:])
    if not SERVERS:
        sys.exit("usage: pymemcache_interop.py HOST:PORT [HOST:PORT ...]")
    unittest.main(argv=[sys.argv[0], "-v"])
