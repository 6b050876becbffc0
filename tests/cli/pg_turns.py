"""A loopback TCP proxy in front of a PostgreSQL server that counts round trips (for
tests/cli/test_serve_pg.sh and test_db_pg's test_round_trips).

usage: pg_turns.py PGPORT PORTFILE COUNTFILE

Listens on a free loopback port (written to PORTFILE once listening), forwards each
connection to 127.0.0.1:PGPORT, and counts the client's turns: each time a client sends
after the server last spoke to it. COUNTFILE holds the total, rewritten at every turn, so
that a test reads it before and after one call; TCP splitting a message into several reads
adds no turn. COUNTFILE.parse holds the Parse messages clients sent (statements the server
parsed and planned: a statement prepared before and executed again sends none)."""
import os
import select
import socket
import sys

pg_port, port_file, count_file = int(sys.argv[1]), sys.argv[2], sys.argv[3]
lsn = socket.socket()
lsn.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
lsn.bind(("127.0.0.1", 0))
lsn.listen(64)
turns = 0
parses = 0
STARTUP = 196608  # protocol 3.0: the message after which every message has a type byte


def save():
    for path, n in ((count_file, turns), (count_file + ".parse", parses)):
        with open(path + ".tmp", "w") as f:
            f.write(str(n))
        os.replace(path + ".tmp", path)


def count_parses(st, data):
    """Reads the client's messages in data (st: its buffer and whether its startup is over)
    and counts its Parse ('P') messages."""
    global parses
    st["buf"] += data
    b = st["buf"]
    while True:
        if not st["typed"]:  # SSLRequest, GSSENCRequest, StartupMessage: length, code
            if len(b) < 8 or len(b) < int.from_bytes(b[:4], "big"):
                break
            n = int.from_bytes(b[:4], "big")
            st["typed"] = int.from_bytes(b[4:8], "big") == STARTUP
        else:
            if len(b) < 5 or len(b) < 1 + int.from_bytes(b[1:5], "big"):
                break
            n = 1 + int.from_bytes(b[1:5], "big")
            parses += b[:1] == b"P"
        b = b[n:]
    st["buf"] = b


save()
with open(port_file + ".tmp", "w") as f:
    f.write(str(lsn.getsockname()[1]))
os.replace(port_file + ".tmp", port_file)
peer = {}  # socket -> its other end
client_turn = {}  # client socket -> 1 while the client is the one talking
stream = {}  # client socket -> what count_parses keeps of its messages
while True:
    ready, _, _ = select.select([lsn] + list(peer), [], [])
    for s in ready:
        if s is lsn:
            c, _ = lsn.accept()
            u = socket.create_connection(("127.0.0.1", pg_port))
            peer[c], peer[u] = u, c
            client_turn[c] = 0
            stream[c] = {"buf": b"", "typed": False}
            continue
        if s not in peer:
            continue
        data = s.recv(65536)
        other = peer[s]
        if not data:
            for x in (s, other):
                peer.pop(x, None)
                client_turn.pop(x, None)
                stream.pop(x, None)
                x.close()
            continue
        if s in client_turn:  # the client speaks
            before = parses
            count_parses(stream[s], data)
            if not client_turn[s]:
                turns += 1
            if not client_turn[s] or parses != before:
                save()
            client_turn[s] = 1
        else:
            client_turn[other] = 0
        other.sendall(data)
