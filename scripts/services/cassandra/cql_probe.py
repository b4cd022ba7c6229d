#!/usr/bin/env python3
"""Asks a CQL server (native protocol v4) for its release version and prints it.

Usage: cql_probe.py HOST PORT [TIMEOUT_SECONDS]. Sends STARTUP, then
`SELECT release_version FROM system.local`; prints the version and exits 0, or prints why it
could not and exits 1. Used by scripts/services/cassandra.sh to wait until CQL answers (the
script needs no cqlsh or driver)."""

import socket
import struct
import sys

VERSION = 0x04
OP_ERROR, OP_STARTUP, OP_READY, OP_QUERY, OP_RESULT = 0x00, 0x01, 0x02, 0x07, 0x08


def frame(stream, opcode, body):
    return struct.pack(">BBhBi", VERSION, 0, stream, opcode, len(body)) + body


def recv_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("connection closed by the server")
        data += chunk
    return data


def read_frame(sock):
    header = recv_exact(sock, 9)
    _version, _flags, _stream, opcode, length = struct.unpack(">BBhBi", header)
    return opcode, recv_exact(sock, length)


def cql_string(s):
    b = s.encode()
    return struct.pack(">H", len(b)) + b


def error_message(body):
    code = struct.unpack(">i", body[:4])[0]
    (n,) = struct.unpack(">H", body[4:6])
    return f"error 0x{code:04x}: {body[6:6 + n].decode(errors='replace')}"


def read_string(body, pos):
    (n,) = struct.unpack(">H", body[pos:pos + 2])
    return body[pos + 2:pos + 2 + n].decode(), pos + 2 + n


def release_version(host, port, timeout):
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        sock.sendall(frame(1, OP_STARTUP, struct.pack(">H", 1) + cql_string("CQL_VERSION") + cql_string("3.0.0")))
        opcode, body = read_frame(sock)
        if opcode != OP_READY:
            raise RuntimeError(f"STARTUP answered opcode {opcode}" + (f" ({error_message(body)})" if opcode == OP_ERROR else ""))
        query = b"SELECT release_version FROM system.local"
        # [long string] query, [short] consistency ONE, [byte] flags 0.
        sock.sendall(frame(2, OP_QUERY, struct.pack(">i", len(query)) + query + struct.pack(">HB", 0x0001, 0)))
        opcode, body = read_frame(sock)
        if opcode == OP_ERROR:
            raise RuntimeError(error_message(body))
        if opcode != OP_RESULT:
            raise RuntimeError(f"QUERY answered opcode {opcode}")
        kind, flags, columns = struct.unpack(">iii", body[:12])
        if kind != 2 or columns != 1:
            raise RuntimeError(f"unexpected result kind {kind} with {columns} columns")
        pos = 12
        if flags & 0x0002:  # has more pages: [bytes] paging state
            (n,) = struct.unpack(">i", body[pos:pos + 4])
            pos += 4 + max(n, 0)
        if not flags & 0x0004:  # metadata present
            # Keyspace and table: once (global table spec) or before the one column.
            _, pos = read_string(body, pos)
            _, pos = read_string(body, pos)
            _, pos = read_string(body, pos)  # column name
            pos += 2  # type id (varchar: no parameters)
        (rows,) = struct.unpack(">i", body[pos:pos + 4])
        pos += 4
        if rows != 1:
            raise RuntimeError(f"system.local has {rows} rows")
        (n,) = struct.unpack(">i", body[pos:pos + 4])
        return body[pos + 4:pos + 4 + n].decode()


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    timeout = float(sys.argv[3]) if len(sys.argv) > 3 else 5.0
    try:
        print(release_version(host, port, timeout))
    except (OSError, RuntimeError, struct.error, ValueError) as e:
        print(f"{host}:{port}: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
