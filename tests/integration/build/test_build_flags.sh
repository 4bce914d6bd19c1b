#!/bin/bash
# test_build_flags.sh KILN MAKE_BASE_IMAGE: the Dockerfile flags the other build tests do not reach,
# built for real: COPY --link, --exclude and --parents, ADD --link, MAINTAINER, RUN
# --mount=type=secret (file and env, required), type=ssh (an ssh-agent socket forwarded), and a
# locked cache mount, checking the resulting files and config.
set -eu # no pipefail: `... | grep -q` closes the pipe early by design
KILN=$1
MKIMG=$2

[ "$(id -u)" = 0 ] || { echo "SKIP: needs root (the sandbox)"; exit 77; }
command -v ssh-agent >/dev/null || { echo "SKIP: ssh-agent missing (scripts/deps.sh installs openssh-client)"; exit 77; }

. "$(dirname "$0")/harness.sh"
harness_start flags

eval "$(ssh-agent -a "$T/agent.sock")" >/dev/null
PIDS="$PIDS $SSH_AGENT_PID"

mkdir -p "$T/ctx/src/a/deep" "$T/ctx/src/b" "$T/ctx/docs"
echo keep >"$T/ctx/src/keep.txt"
echo skip >"$T/ctx/src/skip.log"
echo deep >"$T/ctx/src/a/deep/x.txt"
echo bee >"$T/ctx/src/b/y.txt"
echo readme >"$T/ctx/docs/README"
printf 'the-secret-value-7f3a' >"$T/secret.txt"
SUM=$(md5sum <"$T/secret.txt" | cut -d' ' -f1) # the Dockerfile holds its digest, not the value
cat >"$T/ctx/Dockerfile" <<EOF
# syntax=docker/dockerfile:1.7
FROM base
MAINTAINER Kiln Tests <tests@example.com>
COPY --link src /linked/
COPY --exclude=*.log src /excluded/
COPY --parents src/a/deep/x.txt src/b/y.txt /parents/
ADD --link docs/README /added/
RUN --mount=type=secret,id=tok,required test "\$(md5sum < /run/secrets/tok | cut -d' ' -f1)" = $SUM && \
    echo seen > /secret-seen
RUN --mount=type=secret,id=tok,env=TOK test "\$(printf %s "\$TOK" | md5sum | cut -d' ' -f1)" = $SUM && \
    echo env-seen > /secret-env
RUN --mount=type=ssh test -S "\$SSH_AUTH_SOCK" && echo agent > /ssh-seen
RUN --mount=type=cache,target=/cache,sharing=locked echo locked >> /cache/log && cp /cache/log /cache-log
EOF

kb --secret id=tok,src="$T/secret.txt" --ssh default="$T/agent.sock" -t flags \
    -o "type=local,dest=$T/out" "$T/ctx" >"$T/b.log" 2>"$T/b.err" || fail "build"
O=$T/out
[ "$(cat "$O/linked/keep.txt")" = keep ] && [ -f "$O/linked/skip.log" ] || fail "COPY --link"
[ -f "$O/excluded/keep.txt" ] && [ ! -e "$O/excluded/skip.log" ] || fail "COPY --exclude"
[ "$(cat "$O/excluded/a/deep/x.txt")" = deep ] || fail "COPY --exclude dropped a directory"
[ "$(cat "$O/parents/src/a/deep/x.txt")" = deep ] && [ "$(cat "$O/parents/src/b/y.txt")" = bee ] ||
    fail "COPY --parents: $(cd "$O/parents" 2>/dev/null && find . | sort | tr '\n' ' ')"
[ "$(cat "$O/added/README")" = readme ] || fail "ADD --link"
[ "$(cat "$O/secret-seen")" = seen ] || fail "secret file not seen"
[ "$(cat "$O/secret-env")" = env-seen ] || fail "secret as env"
[ "$(cat "$O/ssh-seen")" = agent ] || fail "ssh agent socket not forwarded"
[ "$(cat "$O/cache-log")" = locked ] || fail "locked cache mount"
[ ! -e "$O/run/secrets/tok" ] || fail "the secret reached the image"

# MAINTAINER sets the author; the secret is in no layer of the image
kb --secret id=tok,src="$T/secret.txt" --ssh default="$T/agent.sock" -t flags "$T/ctx" \
    >"$T/b2.log" 2>"$T/b2.err" || fail "image build"
"$KILN" inspect flags >"$T/inspect.json" 2>"$T/inspect.err" || fail "inspect"
grep -q '"author": *"Kiln Tests <tests@example.com>"' "$T/inspect.json" ||
    grep -q 'Kiln Tests <tests@example.com>' "$T/inspect.json" || fail "MAINTAINER: no author"
"$KILN" save -o "$T/flags.tar" flags 2>"$T/save.err" || fail "save"
mkdir -p "$T/saved" && tar -C "$T/saved" -xf "$T/flags.tar" || fail "unpack the saved image"
for f in $(find "$T/saved" -type f); do
    if zcat -f "$f" | grep -a -q "the-secret-value-7f3a"; then fail "the secret's bytes are in $f"; fi
done

# a required secret that is not given fails the step, naming it
if kb --no-cache --ssh default="$T/agent.sock" "$T/ctx" >"$T/b3.log" 2>"$T/b3.err"; then fail "missing required secret built"; fi
grep -q 'tok' "$T/b3.err" || fail "missing secret error does not name it"

echo "PASS"
