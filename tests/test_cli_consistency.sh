#!/bin/sh
# One consistent CLI (issue 24, items 4, 5 and 8; docs/cli.md). Walks every
# command that `crl --help` lists and checks its --help, then the rules
# with real commands:
# - every command's --help exits 0 and starts with "usage: crl CMD";
# - a task is --task everywhere (no option line is --env); an output is
#   -o/--output (no option line is --out); values have a metavar that says
#   what they are (no "VALUE");
# - -o works where --output does, --out and --env stay as aliases, and an
#   alias given with its flag counts as the flag given twice;
# - task positions are 0-based and --task takes a name or a position
#   (crl eval and crl export agree);
# - --db in a missing folder creates the folder; an unknown method or task
#   is refused before anything is written;
# - crl train --dry-run prints the configuration and an estimate, and
#   writes nothing;
# - crl eval scores stochastic episodes by default (Continual World's).
#
# usage: test_cli_consistency.sh CRL_BIN
set -u
crl=$1
fail=0
work=$(mktemp -d /tmp/crl_test_cli_XXXXXX) || exit 1
trap 'rm -rf "$work"' EXIT INT TERM
cd "$work" || exit 1

bad() {
    echo "FAIL: $*"
    fail=1
}

# ---- every command's --help
cmds=$("$crl" --help | awk '/^commands:/ {f = 1; next} f && !NF {exit} f {print $1}')
[ -n "$cmds" ] || bad "crl --help lists no commands"
n=0
for c in $cmds; do
    n=$((n + 1))
    "$crl" "$c" --help >help.txt 2>&1 || bad "crl $c --help exits $?"
    head -n 1 help.txt | grep -q "^usage: crl $c" || bad "crl $c --help: $(head -n 1 help.txt)"
    # Option lines: two spaces, then the flag.
    grep -E '^  (-o, )?--' help.txt >opts.txt
    if grep -qE '^  --env[ ,]' opts.txt; then bad "crl $c: an option is --env, not --task"; fi
    if grep -qE '^  --out[ ,]' opts.txt; then bad "crl $c: an option is --out, not -o, --output"; fi
    if grep -qE '^  --output ' opts.txt; then bad "crl $c: --output without -o"; fi
    if grep -qE '^  (-o, )?--[a-z0-9-]+ VALUE' opts.txt; then
        bad "crl $c: a value without a meaningful metavar: $(grep VALUE opts.txt | head -n 1)"
    fi
done
[ "$n" -ge 15 ] || bad "only $n commands walked"
"$crl" train --help | grep -qE '^  --task NAME .*also --env' || bad "train: --task NAME (also --env)"
for c in train; do
    for g in "task and schedule:" "SAC:" "CSP:" "L2M:" "output:"; do
        "$crl" "$c" --help | grep -q "^$g" || bad "crl $c --help has no group '$g'"
    done
done

# ---- -o, --output, --out; --task and --env
"$crl" export --task-xml push -o a.xml >/dev/null 2>&1 && [ -s a.xml ] || bad "export -o"
"$crl" export --task-xml push --out b.xml >/dev/null 2>&1 && [ -s b.xml ] || bad "export --out"
"$crl" export --task-xml push --output c.xml >/dev/null 2>&1 && [ -s c.xml ] || bad "export --output"
"$crl" export --task-xml push -o d.xml --output e.xml >/dev/null 2>err.txt
[ $? = 2 ] && grep -q "given twice" err.txt || bad "-o with --output: $(cat err.txt)"
[ ! -e d.xml ] && [ ! -e e.xml ] || bad "-o with --output wrote a file"
"$crl" train --env push --task reach --db t.db --dry-run >/dev/null 2>err.txt
[ $? = 2 ] && grep -q "given twice" err.txt || bad "--env with --task: $(cat err.txt)"

small="--hidden 8 --layers 1 --batch 8 --start-steps 50 --update-after 50 \
--eval-episodes 1 --threads 1 --log-train-episodes none --quiet"

# ---- --db in a missing folder; refusals before writing
# shellcheck disable=SC2086
"$crl" train --db new/sub/x.db --env pendulum --steps 100 --eval-every 100 $small \
    >/dev/null 2>err.txt || bad "--db new/sub/x.db: $(cat err.txt)"
[ -f new/sub/x.db ] || bad "--db new/sub/x.db: no file"
"$crl" train --db none/y.db --scenario t1 --method nope >/dev/null 2>err.txt
[ $? = 2 ] && [ "$(wc -l <err.txt)" = 1 ] || bad "unknown method: $(cat err.txt)"
[ ! -e none ] || bad "an unknown method created the folder"
"$crl" train --db none/y.db --task nope >/dev/null 2>err.txt
[ $? = 2 ] && grep -q "unknown task 'nope'" err.txt || bad "unknown task: $(cat err.txt)"
[ ! -e none ] || bad "an unknown task created the folder"

# ---- positions: 0-based, by name or by number, eval and export agree
# shellcheck disable=SC2086
"$crl" train --db c.db --scenario t1 --method ft1 --steps-per-task 100 --eval-every 100 \
    $small >/dev/null 2>&1 || bad "setup: t1 run"
"$crl" eval --db c.db --run 1 --task 1 --episodes 1 >p1.txt 2>&1 || bad "eval --task 1"
"$crl" eval --db c.db --run 1 --task window-close --episodes 1 >p2.txt 2>&1 ||
    bad "eval --task window-close"
cmp -s p1.txt p2.txt || bad "eval --task 1 and --task window-close differ"
grep -q "^task 1 window-close:" p1.txt || bad "eval position 1: $(cat p1.txt)"
"$crl" eval --db c.db --run 1 --task 3 >/dev/null 2>err.txt
[ $? = 2 ] && grep -q "positions 0 to 2" err.txt || bad "eval --task 3: $(cat err.txt)"
"$crl" export --db c.db --run 1 --task window-close -o w.crlp >ex.txt 2>&1 ||
    bad "export --task window-close: $(cat ex.txt)"
grep -q "window-close (scenario position 1)" ex.txt || bad "export position: $(cat ex.txt)"

# ---- crl eval: stochastic by default
"$crl" eval --db c.db --run 1 --task 0 --episodes 2 >s1.txt 2>&1
grep -q "2 stochastic episodes" s1.txt || bad "eval default: $(cat s1.txt)"
"$crl" eval --db c.db --run 1 --task 0 --episodes 2 --deterministic >s2.txt 2>&1
grep -q "2 deterministic episodes" s2.txt || bad "eval --deterministic: $(cat s2.txt)"

# ---- --dry-run: configuration and estimate, nothing written
"$crl" train --db dry/z.db --scenario t1 --method packnet --steps-per-task 5000 \
    --threads 1 --dry-run >dry.txt 2>err.txt || bad "dry-run exits $?: $(cat err.txt)"
grep -qE '^  method +packnet$' dry.txt || bad "dry-run: no resolved method"
grep -qE '^  steps_per_task +5000$' dry.txt || bad "dry-run: no steps_per_task"
grep -q '^estimate: ' dry.txt || bad "dry-run: no estimate"
grep -q 'updates/s' dry.txt || bad "dry-run: no calibration"
[ ! -e dry ] || bad "--dry-run wrote dry/"
"$crl" train --db dry/z.db --scenario t1 --steps-per-task -5 --dry-run >/dev/null 2>err.txt
[ $? = 2 ] || bad "dry-run with a bad value exits $?"
# The estimate is about right: a real 3,000-step pendulum run takes between a
# quarter and 4 times what --dry-run says (loose: the machine may be busy).
"$crl" train --env pendulum --steps 3000 --eval-every 1000 --threads 1 \
    --hidden 64 --layers 2 --dry-run >d2.txt 2>&1 || bad "pendulum dry-run"
est=$(awk '/^estimate:/ {print $2, $3}' d2.txt)
t0=$(date +%s.%N)
"$crl" train --db p.db --env pendulum --steps 3000 --eval-every 1000 --threads 1 \
    --hidden 64 --layers 2 --quiet >/dev/null 2>&1 || bad "pendulum run"
t1=$(date +%s.%N)
awk -v e="$est" -v t0="$t0" -v t1="$t1" 'BEGIN {
    a = t1 - t0; split(e, p, " "); s = p[1] * (p[2] == "min" ? 60 : p[2] == "h" ? 3600 : 1);
    if (!(a > s / 4 && a < s * 4 + 2)) { print "FAIL: estimate " e ", actual " a " s"; exit 1 }
}' || fail=1

[ "$fail" = 0 ] && echo "test_cli_consistency: ok ($n commands)"
exit "$fail"
