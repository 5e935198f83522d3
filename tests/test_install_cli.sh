#!/bin/sh
# The installed command line, as a user gets it from `cmake --install`:
#   1. bin/crl runs (--version) from the prefix;
#   2. share/man/man1/crl.1 is a man page with every command's section
#      (written from the binary's own --help texts), and man renders it when
#      man is installed;
#   3. share/bash-completion/completions/crl completes commands, a
#      command's options, task names (also in a comma list), scenarios and
#      methods.
# usage: test_install_cli.sh BUILD_DIR SOURCE_DIR
set -eu
build=$1
src=$2
tmp=$(mktemp -d "${TMPDIR:-/tmp}/crl-install-cli.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM
fail() {
    echo "test_install_cli: FAIL: $*" >&2
    exit 1
}
prefix=$tmp/prefix
cmake --build "$build" --target crl_man >/dev/null || fail "cannot build the man page"
cmake --install "$build" --prefix "$prefix" >/dev/null || fail "cmake --install failed"

crl=$prefix/bin/crl
[ -x "$crl" ] || fail "no bin/crl"
"$crl" --version | grep -q '^crl ' || fail "bin/crl --version"

man1=$prefix/share/man/man1/crl.1
[ -f "$man1" ] || fail "no share/man/man1/crl.1"
head -n 1 "$man1" | grep -q '^\.TH CRL 1' || fail "crl.1 has no .TH line"
for c in $("$crl" --help | awk '/^commands:/ {f = 1; next} f && /^  [a-z]/ {print $1}'); do
    C=$(echo "$c" | tr a-z A-Z)
    grep -q "^\.SH \"CRL $C\"" "$man1" || fail "crl.1 has no section for '$c'"
done
grep -q -- '--steps-per-task' "$man1" || fail "crl.1 lacks train's options"
if command -v man >/dev/null 2>&1; then
    out=$(MANWIDTH=80 man -l "$man1" 2>&1) || fail "man -l crl.1 failed: $out"
    echo "$out" | grep -q 'CRL TRAIN' || fail "rendered crl.1 lacks CRL TRAIN"
    echo "$out" | grep -q 'IoptionsR' && fail "crl.1 has a broken font escape"
fi

comp=$prefix/share/bash-completion/completions/crl
[ -f "$comp" ] || fail "no share/bash-completion/completions/crl"
command -v bash >/dev/null 2>&1 || { echo "test_install_cli: no bash, completion not run"; exit 0; }
# complete WORDS...: what the completion offers for the last word.
complete_words() {
    bash -c '. "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _crl; printf "%s\n" "${COMPREPLY[@]}"' \
        _ "$comp" "$@"
}
has() { # has WANT WORDS...
    want=$1
    shift
    complete_words "$@" | grep -qx -- "$want" || fail "completing '$*' does not offer $want (got: $(complete_words "$@" | tr '\n' ' '))"
}
has train "$crl" tr
has dataset "$crl" dat
has --steps-per-task "$crl" train --steps-p
has --episodes "$crl" dataset --epi
has stick-pull "$crl" train --env sti
has push,shelf-place "$crl" dataset --tasks push,sh
has cw10 "$crl" train --scenario cw
has packnet "$crl" train --method pa
complete_words "$crl" train --steps-p | grep -q -- '--eval-every' && fail "'--steps-p' offers --eval-every"
echo "test_install_cli: ok"
