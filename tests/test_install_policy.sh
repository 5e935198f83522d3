#!/bin/sh
# The installed policy runtime, libcrl_policy, as a user gets it:
#   1. `cmake --install` of the build into a temporary prefix;
#   2. the installed libcrl_policy.so needs no SQLite, cairo or GLFW (ldd),
#      and crl-policy.pc names none of them either;
#   3. examples/embed_mujoco.c builds out of tree with
#      `pkg-config --cflags --libs crl-policy` (plus -lmujoco: the example
#      calls MuJoCo itself), links libcrl_policy and not libcrl, and its
#      episodes of two old policy files (tests/data/v0: plain SAC on
#      pendulum, packnet on window-close) give the summary lines `crl eval`
#      of the old build printed; so does a static link of libcrl_policy.a.
#
# usage: test_install_policy.sh BUILD_DIR SOURCE_DIR CRL_BINARY [EXTRA_CFLAGS]
# EXTRA_CFLAGS: for a sanitizer build, whose library needs an instrumented
# program.
set -eu

build=$1
src=$2
crl=$3
extra=${4:-}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/crl-install-policy.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM

fail() {
    echo "test_install_policy: FAIL: $*" >&2
    exit 1
}

prefix=$tmp/prefix
cmake --install "$build" --prefix "$prefix" >"$tmp/install.log" 2>&1 ||
    fail "cmake --install: $(cat "$tmp/install.log")"
lib=$prefix/lib
[ -d "$lib" ] || lib=$(dirname "$(find "$prefix" -name libcrl_policy.so | head -n 1)")
for f in "$lib/libcrl_policy.so" "$lib/libcrl_policy.a" "$lib/pkgconfig/crl-policy.pc" \
    "$prefix/include/crl/policy.h" "$prefix/include/crl/export.h" \
    "$lib/cmake/crl/crlConfig.cmake"; do
    [ -e "$f" ] || fail "not installed: $f"
done

# 2. What the runtime needs at run time.
ldd "$lib/libcrl_policy.so" >"$tmp/ldd.txt" 2>&1 || fail "ldd: $(cat "$tmp/ldd.txt")"
if grep -E 'libsqlite3|libcairo|libglfw' "$tmp/ldd.txt" >"$tmp/bad.txt"; then
    fail "libcrl_policy.so needs $(tr -s ' \t\n' ' ' <"$tmp/bad.txt")"
fi
grep -q libmujoco "$tmp/ldd.txt" || fail "libcrl_policy.so does not link MuJoCo?"
export PKG_CONFIG_PATH="$lib/pkgconfig"
pcflags=$(pkg-config --cflags --libs crl-policy) || fail "pkg-config crl-policy"
pcstatic=$(pkg-config --static --cflags --libs crl-policy)
case "$pcflags $pcstatic" in
*sqlite* | *cairo* | *glfw*) fail "crl-policy.pc names SQLite/cairo/GLFW: $pcstatic" ;;
esac
# Nothing but the runtime's API is exported.
nm -D --defined-only "$lib/libcrl_policy.so" | awk '{print $3}' |
    grep -v -E '^crl_(policy_|rng_|blas_|errf$|strerror$|now$|eval_seed$)' >"$tmp/extra.txt" &&
    fail "libcrl_policy.so exports more than its API: $(tr '\n' ' ' <"$tmp/extra.txt")"

# 3. An out-of-tree program, built with pkg-config only.
exe=$tmp/embed_mujoco
# shellcheck disable=SC2086 # the flags are words
cc -std=c11 -O2 $extra "$src/examples/embed_mujoco.c" $pcflags -lmujoco \
    -Wl,-rpath,"$(pkg-config --variable=libdir crl-policy)" -o "$exe" \
    >"$tmp/cc.log" 2>&1 || fail "build of examples/embed_mujoco.c: $(cat "$tmp/cc.log")"
ldd "$exe" >"$tmp/ldd-exe.txt" 2>&1
grep -q "libcrl_policy.so.0 => $lib" "$tmp/ldd-exe.txt" ||
    fail "the example does not use the installed libcrl_policy: $(cat "$tmp/ldd-exe.txt")"
if grep -E 'libcrl\.so|libsqlite3|libcairo|libglfw' "$tmp/ldd-exe.txt" >"$tmp/bad.txt"; then
    fail "the example needs $(tr -s ' \t\n' ' ' <"$tmp/bad.txt")"
fi

# The static runtime, as examples/README.md links it: nothing of crl is
# loaded at run time.
sexe=$tmp/embed_mujoco_static
# shellcheck disable=SC2086
cc -std=c11 -O2 $extra "$src/examples/embed_mujoco.c" $(pkg-config --cflags crl-policy) \
    "$lib/libcrl_policy.a" $(pkg-config --static --libs crl-policy | sed 's/-lcrl_policy //') \
    -lmujoco -o "$sexe" >"$tmp/cc.log" 2>&1 ||
    fail "static build of examples/embed_mujoco.c: $(cat "$tmp/cc.log")"
if ldd "$sexe" | grep -E 'libcrl|libsqlite3|libcairo|libglfw' >"$tmp/bad.txt"; then
    fail "the static example needs $(tr -s ' \t\n' ' ' <"$tmp/bad.txt")"
fi

# Its episodes are crl eval's (of the old build, tests/data/v0/evalN.txt): a
# single-env run acts on N rows, a continual run on N + 1.
check() { # POLICY TASK_INDEX TASK_NAME ROWS EVAL_FILE [PROGRAM]
    "$crl" export --task-xml "$3" -o "$tmp/$3.xml" >/dev/null 2>"$tmp/err.txt" ||
        fail "crl export --task-xml $3: $(cat "$tmp/err.txt")"
    "${6:-$exe}" "$src/tests/data/v0/$1" "$tmp/$3.xml" --task "$2" --episodes 10 --rows "$4" \
        >"$tmp/out.txt" 2>"$tmp/err.txt" ||
        fail "embed_mujoco $1 --task $2: $(cat "$tmp/err.txt")"
    got=$(grep "^task [0-9]* $3: " "$tmp/out.txt" | sed 's/ episodes).*//')
    want=$(grep "^task [0-9]* $3: " "$src/tests/data/v0/$5" | sed 's/ episodes.*//')
    [ -n "$want" ] && [ "$got" = "$want" ] ||
        fail "$1 task $2: the installed runtime gives '$got', crl eval gave '$want'"
}
check run1.crlp 0 pendulum 10 eval1.txt
check run2.crlp 1 window-close 11 eval2.txt
check run1.crlp 0 pendulum 10 eval1.txt "$sexe"
echo "test_install_policy: ok (libcrl_policy.so needs: $(awk '/=>/{print $1}' "$tmp/ldd.txt" | tr '\n' ' '))"
