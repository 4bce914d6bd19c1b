#!/usr/bin/env python3
"""compare.py KILN_TREE KILN_CONFIG DOCKER_TREE DOCKER_CONFIG CASE EXPECTED: compare the file trees
(type, permission bits, owner, content, link target; not times) and the image configs that kiln
and docker build (BuildKit) made of one Dockerfile. Differences listed in EXPECTED ("CASE WHAT"
lines, with a reason after '#') are reported as intended; any other difference fails."""
import hashlib, json, os, stat, sys

kiln_tree, kiln_cfg, docker_tree, docker_cfg, case, expected_file = sys.argv[1:7]

def tree(root):
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            rel = "/" + os.path.relpath(p, root)
            st = os.lstat(p)
            kind = stat.S_IFMT(st.st_mode)
            entry = {"mode": oct(stat.S_IMODE(st.st_mode)), "uid": st.st_uid, "gid": st.st_gid}
            if stat.S_ISREG(kind):
                with open(p, "rb") as f:
                    entry["file"] = hashlib.sha256(f.read()).hexdigest()[:16]
            elif stat.S_ISLNK(kind):
                entry["link"] = os.readlink(p)
                del entry["mode"]
            elif stat.S_ISDIR(kind):
                entry["dir"] = True
            else:
                entry["other"] = kind
            out[rel] = entry
    return out

def config(path):
    doc = json.load(open(path))
    # kiln inspect: {"config": <OCI config>} or the OCI config; docker image inspect: [{"Config": ...}]
    if isinstance(doc, list):
        doc = doc[0]
    if "Config" in doc and "RootFS" in doc:
        c = doc["Config"] or {}
    else:
        cfg = doc.get("config", doc)
        c = cfg.get("config", cfg) or {}
    keys = ["Env", "Entrypoint", "Cmd", "WorkingDir", "User", "ExposedPorts", "Volumes", "Labels",
            "StopSignal", "Healthcheck", "OnBuild", "Shell"]
    out = {}
    for k in keys:
        v = c.get(k)
        if v in (None, {}, [], ""):
            continue
        out[k] = v
    return out

expected = set()
for line in open(expected_file):
    line = line.split("#", 1)[0].strip()
    if line:
        parts = line.split(None, 1)
        if parts[0] == case:
            expected.add(parts[1])

diffs = []
kt, dt = tree(kiln_tree), tree(docker_tree)
for p in sorted(set(kt) | set(dt)):
    a, b = kt.get(p), dt.get(p)
    if a != b:
        diffs.append(("tree " + p, "kiln %s, docker %s" % (a, b)))
kc, dc = config(kiln_cfg), config(docker_cfg)
for k in sorted(set(kc) | set(dc)):
    if kc.get(k) != dc.get(k):
        diffs.append(("config " + k, "kiln %s, docker %s" % (kc.get(k), dc.get(k))))

bad = 0
for what, detail in diffs:
    if what in expected:
        print("%s: intended difference: %s: %s" % (case, what, detail))
    else:
        print("%s: DIFFERENCE: %s: %s" % (case, what, detail))
        bad += 1
print("%s: %d paths, %d config keys compared, %d unexpected differences" % (case, len(dt), len(dc), bad))
sys.exit(1 if bad else 0)
