#!/bin/bash
# check-includes.sh: enforce the one-way module dependencies of STYLE.md B1 on #include lines:
#   base <- llb, oci <- frontends, solver, cache, executor, source <- engine <- cmd
# and that <lmdb.h>, <seccomp.h> and <curl/curl.h> are included only by their owning module.
set -uo pipefail
cd "$(dirname "$0")/.."

declare -A allowed=(
  [base]="base"
  [llb]="base llb"
  [oci]="base oci"
  [frontends]="base llb oci frontends"
  [solver]="base solver"
  [cache]="base llb oci cache"
  [executor]="base executor"
  [source]="base llb oci source"
  [engine]="base llb oci frontends solver cache executor source engine kiln"
)
declare -A owner=([lmdb.h]=cache [seccomp.h]=executor [curl/curl.h]=oci)
bad=0
while IFS= read -r file; do
  mod=${file%%/*}
  [ -n "${allowed[$mod]+x}" ] || continue
  while IFS= read -r inc; do
    dep=${inc%%/*}
    case " ${allowed[$mod]} " in *" $dep "*) ;; *)
      echo "$file: includes \"$inc\": module $mod may not depend on $dep"; bad=1 ;;
    esac
  done < <(sed -n 's/^#include "\([^"]*\)".*/\1/p' "$file")
  for lib in "${!owner[@]}"; do
    if grep -q "^#include <$lib>" "$file" && [ "${owner[$lib]}" != "$mod" ]; then
      echo "$file: includes <$lib>, which only ${owner[$lib]}/ may include"; bad=1
    fi
  done
done < <(git ls-files '*.c' '*.h')
[ $bad -eq 0 ] && echo "include graph: ok"
exit $bad
