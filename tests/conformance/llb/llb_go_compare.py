#!/usr/bin/python3
"""Byte-for-byte comparison of kiln's LLB builder with BuildKit's Go client.

Extracts the BuildKit v0.11.6 source tarball (../shared/peers/buildkit), builds go_client.go
inside it against the vendored dependencies (offline: GOFLAGS=-mod=vendor, GOPROXY=off), then for
each graph compares the Go client's Definition with llb_go_graphs' (kiln's builder). On a
mismatch it prints the ops that differ (via `kiln debug dump-llb --json`).
Exit 0 = identical, 1 = different, 77 = skipped (no Go toolchain or no tarball).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile

GRAPHS = ["hello", "mounts", "files", "git"]


def prepare(tarball, workdir, client_src):
    if shutil.which("go") is None:
        print("skip: no Go toolchain (Debian golang-go)")
        sys.exit(77)
    if not os.path.exists(tarball):
        print("skip: %s not found" % tarball)
        sys.exit(77)
    root = os.path.join(workdir, "buildkit")
    marker = os.path.join(root, ".extracted")
    if not os.path.exists(marker):
        shutil.rmtree(root, ignore_errors=True)
        os.makedirs(root)
        with tarfile.open(tarball) as t:
            t.extractall(root)
        open(marker, "w").close()
    src = [d for d in os.listdir(root) if d.startswith("buildkit")][0]
    mod = os.path.join(root, src)
    os.makedirs(os.path.join(mod, "cmd", "kilngoclient"), exist_ok=True)
    shutil.copy(client_src, os.path.join(mod, "cmd", "kilngoclient", "main.go"))
    exe = os.path.join(workdir, "kilngoclient")
    env = dict(os.environ, GOFLAGS="-mod=vendor", GOPROXY="off", GO111MODULE="on",
               GOCACHE=os.path.join(workdir, "gocache"), GOPATH=os.path.join(workdir, "gopath"))
    subprocess.run(["go", "build", "-o", exe, "./cmd/kilngoclient"], cwd=mod, env=env, check=True)
    return exe


def explain(kiln, go_bytes, kiln_bytes, workdir, name):
    dumps = []
    for tag, data in (("go", go_bytes), ("kiln", kiln_bytes)):
        path = os.path.join(workdir, "%s-%s.llb" % (name, tag))
        with open(path, "wb") as f:
            f.write(data)
        out = subprocess.run([kiln, "debug", "dump-llb", "--json", path], capture_output=True)
        dumps.append([json.loads(line) for line in out.stdout.decode().splitlines()])
    for i, (a, b) in enumerate(zip(*dumps)):
        if a != b:
            print("  op %d\n    go:   %s\n    kiln: %s" % (i, json.dumps(a), json.dumps(b)))
    if len(dumps[0]) != len(dumps[1]):
        print("  go has %d ops, kiln %d" % (len(dumps[0]), len(dumps[1])))


def varint(buf, i):
    shift = value = 0
    while True:
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, i
        shift += 7


def definition_fields(buf):
    """Top-level fields of a marshalled Definition as (field number, bytes) pairs, in order."""
    fields, i = [], 0
    while i < len(buf):
        key, i = varint(buf, i)
        if key & 7 != 2:
            raise ValueError("unexpected wire type %d in Definition" % (key & 7))
        n, i = varint(buf, i)
        fields.append((key >> 3, buf[i:i + n]))
        i += n
    return fields


def same_up_to_op_order(a, b):
    """BuildKit's loader ignores the order of Definition.def except for the terminal (last) op,
    and the Go client's order is not stable for ops reached through a FileOp's inputs (it comes
    from Go map iteration). Equal when the ops are the same multiset, the terminal op is the same
    and every other field (metadata, source) is byte-identical."""
    fa, fb = definition_fields(a), definition_fields(b)
    da, db = [v for k, v in fa if k == 1], [v for k, v in fb if k == 1]
    rest_a, rest_b = [f for f in fa if f[0] != 1], [f for f in fb if f[0] != 1]
    return bool(da) and da[-1] == db[-1] and sorted(da) == sorted(db) and rest_a == rest_b


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kiln", required=True)
    ap.add_argument("--graphs", required=True, help="the llb_go_graphs executable")
    ap.add_argument("--client", required=True, help="go_client.go")
    ap.add_argument("--tarball", required=True)
    ap.add_argument("--workdir", required=True)
    args = ap.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    exe = prepare(args.tarball, args.workdir, args.client)
    failed = 0
    for name in GRAPHS:
        go_bytes = subprocess.run([exe, name], capture_output=True, check=True).stdout
        kiln_bytes = subprocess.run([args.graphs, name], capture_output=True, check=True).stdout
        if go_bytes == kiln_bytes:
            print("%s: identical (%d bytes)" % (name, len(go_bytes)))
            continue
        if same_up_to_op_order(go_bytes, kiln_bytes):
            print("%s: identical ops, metadata and source; the Go client ordered the ops "
                  "differently this run" % name)
            continue
        failed += 1
        print("%s: DIFFERENT" % name)
        explain(args.kiln, go_bytes, kiln_bytes, args.workdir, name)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
