#!/usr/bin/python3
"""Prints libmemcached's own server choice for a fixed set of keys and server lists, via
ctypes on the system's libmemcached.so.11 (KETAMA_WEIGHTED: MD5, 160 points per server).
Its output is checked in as ketama_libmemcached.txt; CI regenerates it and diffs, so the
fixture the Rust ring is tested against is really libmemcached's answer."""
import ctypes

lib = ctypes.CDLL("libmemcached.so.11")
lib.memcached_create.restype = ctypes.c_void_p
lib.memcached_create.argtypes = [ctypes.c_void_p]
lib.memcached_free.argtypes = [ctypes.c_void_p]
lib.memcached_behavior_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint64]
lib.memcached_server_add_with_weight.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_uint, ctypes.c_uint32]
lib.memcached_generate_hash.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
lib.memcached_generate_hash.restype = ctypes.c_uint32
KETAMA_WEIGHTED = 16

CLUSTERS = [
    [("127.0.0.1", 11211, 1), ("127.0.0.1", 11212, 1), ("127.0.0.1", 11213, 1)],
    [("10.0.0.1", 11211, 1), ("10.0.0.2", 11211, 1)],
    [("cache-a", 11211, 1), ("cache-b", 22122, 3), ("cache-c", 11211, 2), ("cache-d", 11311, 1)],
]
KEYS = [b"route:proto=imap;user=user%d@example.com" % i for i in range(300)] + \
       [b"alias:user=u%d;ip=10.1.%d.%d" % (i, i % 256, i * 7 % 256) for i in range(300)] + \
       [b"k%d" % i for i in range(400)]

for servers in CLUSTERS:
    m = lib.memcached_create(None)
    lib.memcached_behavior_set(m, KETAMA_WEIGHTED, 1)
    for host, port, weight in servers:
        assert lib.memcached_server_add_with_weight(m, host.encode(), port, weight) == 0
    print("cluster " + " ".join("%s:%d*%d" % s for s in servers))
    for k in KEYS:
        print("%s %d" % (k.decode(), lib.memcached_generate_hash(m, k, len(k))))
    lib.memcached_free(m)
