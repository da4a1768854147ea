#!/usr/bin/env python3
# CVE-2011-0411: commands pipelined behind STARTTLS, sent in the clear in the
# same packet, must be neither answered in the clear nor executed once TLS is
# up. Sends "STARTTLS\r\n" and the command given in one write, then checks that
# only the 220 comes back before the handshake, and that after it a NOOP gets
# exactly one reply. Prints each finding; exit status 0 only if both hold.
# Usage: starttls_pipelining.py HOST PORT COMMAND
import socket
import ssl
import sys

host, port, injected = sys.argv[1], int(sys.argv[2]), sys.argv[3]


def read_reply(s):
    # One octet at a time: nothing after the reply is taken off the socket.
    lines, line = [], b""
    while True:
        c = s.recv(1)
        if not c:
            return lines
        line += c
        if line.endswith(b"\r\n"):
            lines.append(line.decode().rstrip("\r\n"))
            if len(line) < 4 or line[3:4] != b"-":
                return lines
            line = b""


sock = socket.create_connection((host, port), timeout=10)
print("greeting:", read_reply(sock))
sock.sendall(b"EHLO pipeliner.test\r\n")
print("ehlo:", read_reply(sock)[-1])
sock.sendall(b"STARTTLS\r\n" + injected.encode() + b"\r\n")
print("starttls:", read_reply(sock))
# Nothing else may arrive in the clear: the relay now waits for our ClientHello.
sock.settimeout(1.0)
try:
    extra = sock.recv(4096)
except socket.timeout:
    extra = b""
print("clear-text after 220:", repr(extra))
sock.settimeout(10)
context = ssl.create_default_context()
context.check_hostname = False
context.verify_mode = ssl.CERT_NONE
tls = context.wrap_socket(sock, server_hostname="relay.test")
tls.sendall(b"NOOP\r\n")
print("noop:", read_reply(tls))
tls.settimeout(1.0)
try:
    extra_tls = tls.recv(4096)
except socket.timeout:
    extra_tls = b""
print("tls after noop:", repr(extra_tls))
ok = extra == b"" and extra_tls == b""
tls.settimeout(10)
tls.sendall(b"QUIT\r\n")
print("quit:", read_reply(tls))
sys.exit(0 if ok else 1)
