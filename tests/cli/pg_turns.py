"""A loopback TCP proxy in front of a PostgreSQL server that counts round trips (for
tests/cli/test_serve_pg.sh and test_db_pg's test_round_trips).

usage: pg_turns.py PGPORT PORTFILE COUNTFILE

Listens on a free loopback port (written to PORTFILE once listening), forwards each
connection to 127.0.0.1:PGPORT, and counts the client's turns: each time a client sends
after the server last spoke to it. COUNTFILE holds the total, rewritten at every turn, so
that a test reads it before and after one call; TCP splitting a message into several reads
adds no turn."""
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


def save():
    with open(count_file + ".tmp", "w") as f:
        f.write(str(turns))
    os.replace(count_file + ".tmp", count_file)


save()
with open(port_file + ".tmp", "w") as f:
    f.write(str(lsn.getsockname()[1]))
os.replace(port_file + ".tmp", port_file)
peer = {}  # socket -> its other end
client_turn = {}  # client socket -> 1 while the client is the one talking
while True:
    ready, _, _ = select.select([lsn] + list(peer), [], [])
    for s in ready:
        if s is lsn:
            c, _ = lsn.accept()
            u = socket.create_connection(("127.0.0.1", pg_port))
            peer[c], peer[u] = u, c
            client_turn[c] = 0
            continue
        if s not in peer:
            continue
        data = s.recv(65536)
        other = peer[s]
        if not data:
            for x in (s, other):
                peer.pop(x, None)
                client_turn.pop(x, None)
                x.close()
            continue
        if s in client_turn:  # the client speaks
            if not client_turn[s]:
                turns += 1
                save()
            client_turn[s] = 1
        else:
            client_turn[other] = 0
        other.sendall(data)
