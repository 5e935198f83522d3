#!/bin/sh
# Self-test of scripts/check-modules on small temporary trees: a clean tree
# passes, and each kind of violation fails with its one line.
#
# usage: test_check_modules.sh [SOURCE_DIR]
set -eu

src=${1:-$(dirname "$0")/..}
check=$(cd "$src" && pwd)/scripts/check-modules
tmp=$(mktemp -d "${TMPDIR:-/tmp}/crl-check-modules.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM
fails=0

fail() {
    echo "test_check_modules: FAIL: $*" >&2
    fails=$((fails + 1))
}

# A tree of four modules: low < mid < high < top; top may include only low.
tree() {
    rm -rf "$tmp/t"
    mkdir -p "$tmp/t/docs" "$tmp/t/include/crl" "$tmp/t/low" "$tmp/t/mid" "$tmp/t/high" \
        "$tmp/t/top" "$tmp/t/build/gen"
    cat >"$tmp/t/docs/design.md" <<'EOF'
# design

```module-map
# name | owns          | public headers | may include
low    | low/          | low.h          | -
mid    | mid/ high/x.c | -              | low
high   | high/         | high.h         | *
top    | top/          | -              | low
```
EOF
    printf '#include "base.h"\n' >"$tmp/t/include/crl/low.h"
    printf '/* x */\n' >"$tmp/t/include/crl/base.h"
    printf '#include "low.h"\n' >"$tmp/t/include/crl/high.h"
    printf '#include <stdio.h>\n#include "crl/low.h"\n' >"$tmp/t/low/a.c"
    printf '#include "crl/low.h"\n#include "mid/b.h"\n' >"$tmp/t/mid/b.c"
    printf '#include "b.h"\n' >"$tmp/t/mid/c.c"
    printf '/* b */\n' >"$tmp/t/mid/b.h"
    printf '#include "crl/high.h"\n#include "mid/b.h"\n' >"$tmp/t/high/c.c"
    printf '#include "mid/b.h"\n' >"$tmp/t/high/x.c"
    printf '#include <crl/low.h>\n' >"$tmp/t/top/d.c"
    printf '#include "nowhere.h"\n' >"$tmp/t/build/gen/ignored.c"
}

# expect NAME STATUS LINE: run the check, compare its status, look for LINE.
expect() {
    set +e
    out=$("$check" "$tmp/t" 2>&1)
    rc=$?
    set -e
    [ "$rc" -eq "$2" ] || fail "$1: exit status $rc, expected $2; output: $out"
    if [ -n "$3" ]; then
        printf '%s\n' "$out" | grep -qxF "$3" || fail "$1: no line '$3' in: $out"
    elif [ -n "$out" ]; then
        fail "$1: unexpected output: $out"
    fi
}

tree
# base.h is included but listed by no module: placed nowhere.
expect "unplaced public header" 1 "include/crl/base.h: not placed by the module map"
sed -i 's/| low.h          |/| low.h base.h   |/' "$tmp/t/docs/design.md"
expect "clean tree" 0 ""

printf '#include "crl/high.h"\n' >>"$tmp/t/low/a.c"
expect "public include of a higher module" 1 \
    "low/a.c:3: module low includes high (high is above low)"

tree
sed -i 's/| low.h          |/| low.h base.h   |/' "$tmp/t/docs/design.md"
printf '#include "mid/b.h"\n' >>"$tmp/t/low/a.c"
expect "private include of a higher module" 1 \
    "low/a.c:3: module low includes mid (mid is above low)"

tree
sed -i 's/| low.h          |/| low.h base.h   |/' "$tmp/t/docs/design.md"
printf '#include "low.h"\n#include "mid.h"\n' >"$tmp/t/include/crl/low.h"
printf '/* m */\n' >"$tmp/t/include/crl/mid.h"
sed -i 's/^mid    | mid\/ high\/x.c | -   /mid    | mid\/ high\/x.c | mid.h/' "$tmp/t/docs/design.md"
expect "public header including a higher one" 1 \
    "include/crl/low.h:2: module low includes mid (mid is above low)"

tree
sed -i 's/| low.h          |/| low.h base.h   |/' "$tmp/t/docs/design.md"
printf '#include "crl/high.h"\n' >"$tmp/t/high/x.c"
expect "a file owned inside another module's folder" 1 \
    "high/x.c:1: module mid includes high (high is above mid)"

tree
sed -i 's/| low.h          |/| low.h base.h   |/' "$tmp/t/docs/design.md"
printf '#include "mid/b.h"\n' >>"$tmp/t/top/d.c"
expect "a lower module not in the list" 1 \
    "top/d.c:2: module top includes mid (top may include only: low)"

tree
sed -i 's/| low.h          |/| low.h base.h   |/' "$tmp/t/docs/design.md"
mkdir -p "$tmp/t/other"
printf '/* o */\n' >"$tmp/t/other/o.c"
expect "an unplaced file" 1 "other/o.c: not placed by the module map"

tree
sed -i 's/| low.h          |/| low.h base.h   |/' "$tmp/t/docs/design.md"
printf '#include "low/gone.h"\n' >>"$tmp/t/low/a.c"
expect "an include of no file" 1 \
    "low/a.c:3: includes \"low/gone.h\", which is no file of the tree"

tree
sed -i 's/| low.h          |/| low.h base.h   |/; s/^low    | low\/          | low.h base.h   | -/low | low\/ | low.h base.h | mid/' \
    "$tmp/t/docs/design.md"
expect "a map whose module may include a higher one" 1 \
    "docs/design.md: module map: module low may include mid, which is not a module below it"

tree
sed -i '/^```module-map/d' "$tmp/t/docs/design.md"
set +e
"$check" "$tmp/t" >/dev/null 2>&1
rc=$?
set -e
[ "$rc" -ne 0 ] || fail "a design.md without the block passes"

if [ "$fails" -ne 0 ]; then
    echo "test_check_modules: $fails failure(s)" >&2
    exit 1
fi
echo "test_check_modules: ok"
