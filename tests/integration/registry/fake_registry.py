#!/usr/bin/python3
"""fake_registry.py PORTFILE [LIFETIME]: a scripted registry + token server on 127.0.0.1 for the
paths the real docker-registry cannot exercise: bearer token auth (distribution's token flow),
retries on 503/429, persistent 500s with an OCI error body, and a blob redirect to another host
name that must not receive the Authorization header. Writes its port to PORTFILE, serves until
LIFETIME seconds (default 120) have passed, then exits. Listens on 127.0.0.1 only.

Repositories:
  kiln-test/tok        bearer auth, anonymous tokens accepted
  kiln-test/private    bearer auth, token only with basic credentials kiln:secret (or the OAuth2
                       refresh token "refresh-kiln")
  kiln-test/flaky      503 twice, then 200
  kiln-test/ratelimit  429 with Retry-After: 1 once, then 200
  kiln-test/broken     always 500 with {"errors":[{"code":"UNKNOWN",...}]}
  kiln-test/cut        blob GETs: the first one breaks off half-way, Range requests get 206
  kiln-test/cutnorange the same, but Range is ignored (200 with the whole blob)
  kiln-test/redirect   bearer auth; blob GET answers 307 to http://localhost:PORT/storage/<digest>
GET /stats returns the request counters as JSON.
"""
import base64
import hashlib
import json
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

MANIFEST = json.dumps({
    "schemaVersion": 2,
    "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
               "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
               "size": 2},
    "layers": []}, separators=(",", ":")).encode()
MANIFEST_DIGEST = "sha256:" + hashlib.sha256(MANIFEST).hexdigest()
BLOB = b"kiln redirected blob\n"
BLOB_DIGEST = "sha256:" + hashlib.sha256(BLOB).hexdigest()
BIG = bytes((i * 7 + i // 251) % 256 for i in range(300000))
BASIC_OK = "Basic " + base64.b64encode(b"kiln:secret").decode()

stats = {"token": 0, "token_basic": 0, "token_refresh": 0, "flaky": 0, "ratelimit": 0,
         "broken": 0, "storage_with_auth": 0, "storage": 0, "cut_first": 0, "cut_range": 0}
lock = threading.Lock()


def bump(key):
    with lock:
        stats[key] += 1
        return stats[key]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def send(self, code, body=b"", headers=None):
        self.send_response(code)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def challenge(self, repo):
        port = self.server.server_address[1]
        realm = "http://127.0.0.1:%d/token" % port
        hdr = 'Bearer realm="%s",service="kiln-fake",scope="repository:%s:pull"' % (realm, repo)
        body = json.dumps({"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]})
        self.send(401, body.encode(), {"WWW-Authenticate": hdr, "Content-Type": "application/json"})

    def token(self, query, form):
        scopes = query.get("scope", []) or form.get("scope", [""])[0].split()
        auth = self.headers.get("Authorization", "")
        kind = "anon"
        if form:
            if form.get("grant_type") != ["refresh_token"] or form.get("refresh_token") != ["refresh-kiln"]:
                return self.send(401, b'{"error":"bad refresh token"}')
            bump("token_refresh")
            kind = "user"
        elif auth:
            if auth != BASIC_OK:
                return self.send(401, b'{"error":"bad credentials"}')
            bump("token_basic")
            kind = "user"
        bump("token")
        tok = "tok-%s-%s" % (kind, "+".join(sorted(scopes)))
        key = "access_token" if form else "token"
        self.send(200, json.dumps({key: tok, "expires_in": 300}).encode(),
                  {"Content-Type": "application/json"})

    def cut_blob(self, honour_range):
        rng = self.headers.get("Range", "")
        if not rng:
            bump("cut_first")
            # announce the whole blob, send half, drop the connection
            self.send_response(200)
            self.send_header("Content-Length", str(len(BIG)))
            self.end_headers()
            self.wfile.write(BIG[: len(BIG) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return None
        bump("cut_range")
        start = int(rng[len("bytes="):].rstrip("-"))
        if not honour_range:
            return self.send(200, BIG)
        return self.send(206, BIG[start:], {"Content-Range": "bytes %d-%d/%d" % (start, len(BIG) - 1, len(BIG))})

    def manifest(self):
        self.send(200, MANIFEST, {"Content-Type": "application/vnd.oci.image.manifest.v1+json",
                                  "Docker-Content-Digest": MANIFEST_DIGEST})

    def route(self):
        u = urlparse(self.path)
        parts = u.path.split("/")
        if u.path == "/stats":
            with lock:
                return self.send(200, json.dumps(stats).encode())
        if u.path == "/token":
            form = {}
            if self.command == "POST":
                n = int(self.headers.get("Content-Length", "0"))
                form = parse_qs(self.rfile.read(n).decode())
            return self.token(parse_qs(u.query), form)
        if u.path.startswith("/storage/"):
            bump("storage")
            if self.headers.get("Authorization"):
                bump("storage_with_auth")
                return self.send(403, b"authorization leaked to storage")
            return self.send(200, BLOB)
        if len(parts) < 6 or parts[1] != "v2":
            return self.send(404, b'{"errors":[{"code":"NAME_UNKNOWN","message":"no such route"}]}')
        repo = "/".join(parts[2:4])
        auth = self.headers.get("Authorization", "")
        if repo == "kiln-test/tok":
            if not auth.startswith("Bearer tok-") or "repository:kiln-test/tok:pull" not in auth:
                return self.challenge(repo)
            return self.manifest()
        if repo == "kiln-test/private":
            if not auth.startswith("Bearer tok-user-"):
                return self.challenge(repo)
            return self.manifest()
        if repo == "kiln-test/flaky":
            if bump("flaky") <= 2:
                return self.send(503, b"try again")
            return self.manifest()
        if repo == "kiln-test/ratelimit":
            if bump("ratelimit") == 1:
                return self.send(429, b'{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}',
                                 {"Retry-After": "1"})
            return self.manifest()
        if repo == "kiln-test/broken":
            bump("broken")
            return self.send(500, b'{"errors":[{"code":"UNKNOWN","message":"storage on fire"}]}',
                             {"Content-Type": "application/json"})
        if repo in ("kiln-test/cut", "kiln-test/cutnorange") and parts[4] == "blobs":
            return self.cut_blob(repo == "kiln-test/cut")
        if repo == "kiln-test/redirect" and parts[4] == "blobs":
            if not auth.startswith("Bearer tok-"):
                return self.challenge(repo)
            port = self.server.server_address[1]
            return self.send(307, b"", {"Location": "http://localhost:%d/storage/%s" % (port, parts[5])})
        return self.send(404, b'{"errors":[{"code":"NAME_UNKNOWN","message":"repository unknown"}]}')

    do_GET = route
    do_HEAD = route
    do_POST = route


def main():
    portfile = sys.argv[1]
    lifetime = float(sys.argv[2]) if len(sys.argv) > 2 else 120
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    with open(portfile + ".tmp", "w") as f:
        f.write("%d\n" % srv.server_address[1])
    import os
    os.rename(portfile + ".tmp", portfile)
    threading.Timer(lifetime, srv.shutdown).start()
    srv.serve_forever()


if __name__ == "__main__":
    main()
