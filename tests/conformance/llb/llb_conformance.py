#!/usr/bin/python3
"""LLB conformance: kiln's LLB encoder/decoder against Python's protobuf.

(a) Build a Definition independently in Python (every op kind, maps with empty and false values,
    oneofs set to zero values, packed negative numbers, nested Definition, source locations), write
    it, run `kiln debug dump-llb --json` and check that every vertex digest is sha256 of its bytes,
    that kiln's JSON is the protojson of the op and metadata, and that for deliberately
    non-canonical bytes kiln's canonical digest is what BuildKit's loader computes.
(b) Parse every `kiln debug make-llb` example, re-serialise it with deterministic=True and check
    the bytes are identical to kiln's (Definition and each op).

Python's deterministic serialisation matches Go's (field order, sorted map keys, key and value
always written, packed repeated scalars), which is what BuildKit digests.
Exit 0 = pass, 1 = fail, 77 = skipped (protoc or python3-protobuf missing).
"""
import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def digest(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def load_pb(proto_root, workdir):
    if shutil.which("protoc") is None:
        print("skip: protoc not found (Debian protobuf-compiler)")
        sys.exit(77)
    gen = os.path.join(workdir, "gen")
    os.makedirs(gen, exist_ok=True)
    subprocess.run(["protoc", "--python_out=" + gen, "-I" + proto_root,
                    os.path.join(proto_root, "llb", "ops.proto")], check=True)
    sys.path.insert(0, gen)
    try:
        from llb import ops_pb2
        from google.protobuf import json_format
    except ImportError as e:
        print("skip: python3-protobuf unavailable: %s" % e)
        sys.exit(77)
    return ops_pb2, json_format


def ser(msg):
    return msg.SerializeToString(deterministic=True)


class Graph:
    """Ops appended as deterministic bytes; inputs refer to earlier ops by digest."""

    def __init__(self, pb):
        self.pb = pb
        self.defs = []

    def add(self, op, raw=None):
        data = raw if raw is not None else ser(op)
        self.defs.append(data)
        return digest(data)

    def inp(self, op, dgst, index=0):
        op.inputs.add(digest=dgst, index=index)


def build_ops(pb, g):
    """Every op kind; returns (digest of the last op, metadata dict)."""
    md = {}
    img = pb.Op()
    img.source.identifier = "docker-image://docker.io/library/alpine:3.19"
    img.source.attrs["image.resolvemode"] = "pull"
    img.source.attrs["empty.value"] = ""  # map entry with a zero value
    img.source.attrs["a.first"] = "1"
    img.platform.OS = "linux"
    img.platform.Architecture = "arm64"
    img.platform.Variant = "v8"
    img.platform.OSFeatures.extend(["f1", "f2"])
    img.constraints.filter.append("labels.a==b")
    d_img = g.add(img)
    md[d_img] = pb.OpMetadata(ignore_cache=True, caps={"source.image": True, "unused": False},
                              description={"llb.customname": "FROM alpine", "": "empty key"})

    loc = pb.Op()
    loc.source.identifier = "local://context"
    loc.source.attrs["local.includepattern"] = '["*.c"]'
    d_loc = g.add(loc)

    ex = pb.Op()
    g.inp(ex, d_img)
    g.inp(ex, d_loc)
    m = ex.exec.meta
    m.args.extend(["/bin/sh", "-c", "make"])
    m.env.extend(["A=1", "B="])
    m.cwd = "/src"
    m.user = "1000:1000"
    m.proxy_env.http_proxy = "http://proxy:3128"
    m.proxy_env.no_proxy = "localhost"
    m.extraHosts.add(Host="db", IP="10.0.0.2")
    m.hostname = "h"
    m.ulimit.add(Name="nofile", Soft=-1, Hard=4096)
    m.cgroupParent = "kiln.slice"
    m.removeMountStubsRecursive = True
    m.validExitCodes.extend([0, 2, -7])
    ex.exec.mounts.add(input=0, dest="/", output=0)
    ex.exec.mounts.add(input=1, selector="/sub", dest="/src", output=1)
    ex.exec.mounts.add(input=-1, dest="/cache", output=-1, mountType=pb.CACHE,
                       cacheOpt=pb.CacheOpt(ID="c1", sharing=pb.LOCKED),
                       contentCache=pb.OFF)
    ex.exec.mounts.add(input=-1, dest="/tmp", output=-1, mountType=pb.TMPFS,
                       TmpfsOpt=pb.TmpfsOpt(size=1 << 40))
    ex.exec.mounts.add(input=-1, dest="/run/s", output=-1, mountType=pb.SECRET,
                       secretOpt=pb.SecretOpt(ID="tok", uid=1, gid=2, mode=0o400, optional=True))
    ex.exec.mounts.add(input=-1, dest="/run/ssh", output=-1, mountType=pb.SSH,
                       SSHOpt=pb.SSHOpt(ID="default", mode=0o600), resultID="r1")
    ex.exec.network = pb.HOST
    ex.exec.security = pb.INSECURE
    ex.exec.secretenv.add(ID="k", name="KEY", optional=True)
    ex.exec.cdiDevices.add(name="vendor.com/gpu=0", optional=True)
    d_ex = g.add(ex)
    md[d_ex] = pb.OpMetadata(
        export_cache=pb.ExportCache(Value=True),
        progress_group=pb.ProgressGroup(id="p", name="group", weak=True),
        linux_resources=pb.LinuxResources(memory=1 << 30, cpuShares=512, cpuQuota=-1,
                                          cpusetCpus="0-1"))

    fo = pb.Op()
    g.inp(fo, d_ex, 1)
    g.inp(fo, d_loc)
    acts = fo.file.actions
    a = acts.add(input=0, secondaryInput=-1, output=-1)
    a.mkdir.path = "/d"
    a.mkdir.mode = 0o755
    a.mkdir.makeParents = True
    a.mkdir.owner.user.byID = 0  # oneof set to its zero value: still on the wire
    a.mkdir.owner.group.byName.name = "staff"
    a.mkdir.owner.group.byName.input = 0
    a.mkdir.timestamp = -1
    a = acts.add(input=2, secondaryInput=-1, output=-1)
    a.mkfile.path = "/d/f"
    a.mkfile.mode = 0o644
    a.mkfile.data = b"\x00\x01binary\xff"
    a = acts.add(input=3, secondaryInput=1, output=-1)
    c = a.copy
    c.src = "/"
    c.dest = "/d/src/"
    c.mode = -1
    c.followSymlink = c.dirCopyContents = c.createDestPath = c.allowWildcard = True
    c.allowEmptyWildcard = c.attemptUnpackDockerCompatibility = True
    c.alwaysReplaceExistingDestPaths = True
    c.timestamp = 1700000000000000000
    c.include_patterns.extend(["*.c", "*.h"])
    c.exclude_patterns.append("test")
    c.modeStr = "u=rwX"
    c.required_paths.append("main.c")
    a = acts.add(input=4, secondaryInput=-1, output=-1)
    a.symlink.oldpath = "f"
    a.symlink.newpath = "/d/link"
    a = acts.add(input=5, secondaryInput=-1, output=0)
    a.rm.path = "/d/*.o"
    a.rm.allowNotFound = a.rm.allowWildcard = True
    d_file = g.add(fo)

    mg = pb.Op()
    g.inp(mg, d_file)
    g.inp(mg, d_img)
    mg.merge.inputs.add(input=0)
    mg.merge.inputs.add(input=1)
    d_mg = g.add(mg)

    df = pb.Op()
    g.inp(df, d_mg)
    df.diff.lower.input = -1
    df.diff.upper.input = 0
    d_df = g.add(df)

    bo = pb.Op()
    g.inp(bo, d_df)
    bo.build.builder = -1
    bo.build.inputs["ctx"].input = 0
    bo.build.attrs["filename"] = "Dockerfile"
    bo.build.attrs["z"] = ""
    nested = getattr(bo.build, "def")
    getattr(nested, "def").append(b"\x1a\x00")
    d_bo = g.add(bo)

    pt = pb.Op()
    g.inp(pt, d_bo)
    pt.passthrough.id = "pt"
    pt.passthrough.outputs.extend([0, 1, 300])
    d_pt = g.add(pt)
    return d_pt, md


def noncanonical_pair(pb, g):
    """A leaf op encoded non-canonically (platform before source, map entries unsorted) and an op
    depending on it; returns [(given, expected canonical), ...]. (Duplicate map keys are covered
    by the C unit tests: Python's cpp backend keeps both entries when merging.)"""
    leaf = pb.Op()
    leaf.source.identifier = "git://github.com/moby/buildkit#v0.11.6"
    leaf.source.attrs["b"] = "2"
    leaf.source.attrs["a"] = "1"
    leaf.platform.OS = "linux"
    # Concatenated messages merge on parse: source with entry "b", then the platform (field 10
    # between two occurrences of oneof member 3), then source with entry "a". Go merges the two
    # occurrences of the oneof member; the canonical form sorts everything.
    parts = []
    for k, v in [("b", "2"), ("a", "1")]:
        part = pb.Op()
        part.source.identifier = leaf.source.identifier
        part.source.attrs[k] = v
        parts.append(ser(part))
    raw = parts[0] + ser(pb.Op(platform=leaf.platform)) + parts[1]
    check = pb.Op()
    check.ParseFromString(raw)
    if check != leaf or raw == ser(leaf):
        fail("python: the non-canonical leaf is not what the test intends")
    d_leaf = g.add(None, raw)
    c_leaf = digest(ser(leaf))

    dep = pb.Op()
    g.inp(dep, d_leaf)
    dep.exec.meta.args.append("true")
    dep.exec.mounts.add(input=0, dest="/", output=0)
    d_dep = g.add(dep)
    canon = pb.Op()
    canon.CopyFrom(dep)
    canon.inputs[0].digest = c_leaf
    return d_dep, [(d_leaf, c_leaf), (d_dep, digest(ser(canon)))]


def run_kiln(kiln, *args, stdin=None):
    p = subprocess.run([kiln, *args], input=stdin, capture_output=True)
    if p.returncode != 0:
        fail("kiln %s: exit %d: %s" % (" ".join(args), p.returncode, p.stderr.decode()))
    return p.stdout


def check_dump(pb, json_format, kiln, path, definition, expect_canonical):
    out = run_kiln(kiln, "debug", "dump-llb", "--json", path).decode()
    lines = [json.loads(line) for line in out.splitlines()]
    defs = getattr(definition, "def")
    if len(lines) != len(defs):
        fail("%s: %d JSON lines for %d ops" % (path, len(lines), len(defs)))
    for raw, obj in zip(defs, lines):
        if obj["Digest"] != digest(raw):
            fail("%s: digest %s, python says %s" % (path, obj["Digest"], digest(raw)))
        op = pb.Op()
        op.ParseFromString(raw)
        want = json_format.MessageToDict(op)
        if obj["Op"] != want:
            fail("%s: op %s JSON\n kiln:   %s\n python: %s" % (path, obj["Digest"], obj["Op"], want))
        md = definition.metadata.get(obj["Digest"]) if obj["Digest"] in definition.metadata else None
        want_md = json_format.MessageToDict(md) if md is not None else {}
        if obj["OpMetadata"] != want_md:
            fail("%s: metadata of %s: %s != %s" % (path, obj["Digest"], obj["OpMetadata"], want_md))
        canon = obj.get("CanonicalDigest", obj["Digest"])
        if canon != expect_canonical.get(obj["Digest"], obj["Digest"]):
            fail("%s: canonical digest of %s is %s, expected %s" %
                 (path, obj["Digest"], canon, expect_canonical.get(obj["Digest"])))
    return lines


def part_a(pb, json_format, kiln, workdir):
    g = Graph(pb)
    last, md = build_ops(pb, g)
    d_dep, canon_pairs = noncanonical_pair(pb, g)
    merge = pb.Op()
    g.inp(merge, last)
    g.inp(merge, d_dep)
    merge.merge.inputs.add(input=0)
    merge.merge.inputs.add(input=1)
    d_merge = g.add(merge)
    term = pb.Op()
    g.inp(term, d_merge)
    d_term = g.add(term)
    md[d_term] = pb.OpMetadata(caps={"constraints": True, "platform": True})
    definition = pb.Definition()
    getattr(definition, "def").extend(g.defs)
    for k, v in md.items():
        definition.metadata[k].CopyFrom(v)
    info = definition.Source.infos.add(filename="Dockerfile", data=b"FROM alpine\n",
                                       language="Dockerfile")
    getattr(info.definition, "def").append(b"")
    loc = definition.Source.locations[digest(g.defs[0])].locations.add(sourceIndex=0)
    loc.ranges.add(start=pb.Position(line=1), end=pb.Position(line=1, character=11))
    path = os.path.join(workdir, "python.llb")
    with open(path, "wb") as f:
        f.write(ser(definition))
    expect = dict(canon_pairs)
    # ops above the non-canonical pair inherit a new canonical digest: compute it bottom-up
    expect[d_merge] = digest(ser(rewrite_inputs(pb, merge, expect)))
    expect[d_term] = digest(ser(rewrite_inputs(pb, term, expect)))
    lines = check_dump(pb, json_format, kiln, path, definition, expect)
    text = run_kiln(kiln, "debug", "dump-llb", path).decode()
    for needle in ("docker-image://docker.io/library/alpine:3.19", "make", "merge", "diff",
                   "passthrough", "build", "terminal"):
        if needle not in text:
            fail("text dump lacks %r" % needle)
    print("part a: %d vertices match" % len(lines))


def rewrite_inputs(pb, op, mapping):
    out = pb.Op()
    out.CopyFrom(op)
    for i in out.inputs:
        i.digest = mapping.get(i.digest, i.digest)
    return out


def part_b(pb, json_format, kiln, workdir):
    names = ["hello", "parallel", "files", "everything"]
    for name in names:
        data = run_kiln(kiln, "debug", "make-llb", "--example", name)
        definition = pb.Definition()
        definition.ParseFromString(data)
        if ser(definition) != data:
            fail("example %s: Definition bytes differ from Python's deterministic encoding" % name)
        defs = getattr(definition, "def")
        for raw in defs:
            op = pb.Op()
            op.ParseFromString(raw)
            if ser(op) != raw:
                fail("example %s: op %s is not canonical" % (name, digest(raw)))
        term = pb.Op()
        term.ParseFromString(defs[-1])
        if term.WhichOneof("op") is not None or len(term.inputs) != 1:
            fail("example %s: the last op is not a terminal op" % name)
        caps = definition.metadata[digest(defs[-1])].caps
        if not (caps.get("constraints") and caps.get("platform")):
            fail("example %s: terminal caps missing" % name)
        seen = set()
        for raw in defs:
            op = pb.Op()
            op.ParseFromString(raw)
            for i in op.inputs:
                if i.digest not in seen:
                    fail("example %s: input %s is not before its dependent" % (name, i.digest))
            seen.add(digest(raw))
        path = os.path.join(workdir, name + ".llb")
        with open(path, "wb") as f:
            f.write(data)
        check_dump(pb, json_format, kiln, path, definition, {})
        print("part b: example %s: %d ops, bytes identical" % (name, len(defs)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kiln", required=True)
    ap.add_argument("--proto-root", required=True)
    ap.add_argument("--workdir", required=True)
    args = ap.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    pb, json_format = load_pb(args.proto_root, args.workdir)
    part_a(pb, json_format, args.kiln, args.workdir)
    part_b(pb, json_format, args.kiln, args.workdir)
    print("ok")


if __name__ == "__main__":
    main()
