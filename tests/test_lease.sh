#!/bin/sh
# Run leases (issue 23, item 1; docs/robustness.md "Run leases"): a run being
# trained has one owner. Checks:
#  1. resuming a run another live process trains is refused with one line
#     naming the owner (host, pid), and the owner goes on;
#  2. two `crl train --resume 1` at once: exactly one trains;
#  3. a SIGKILLed owner's run shows as stale in `crl runs` and is taken over
#     at once (same host, pid gone);
#  4. a lease of another host is honoured until its heartbeat expires
#     (60 s), then taken over;
#  5. a trainer that gives up on a lock held by another process still writes
#     status 'failed'.
#
# usage: test_lease.sh CRL_BIN
set -u
crl=$(realpath "$1")
fail=0
work=$(mktemp -d /tmp/crl_test_lease_XXXXXX) || exit 1
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$work"' EXIT INT TERM
cd "$work" || exit 1

bad() {
    echo "FAIL: $*"
    fail=1
}
q() { sqlite3 -cmd ".timeout 10000" d.db "$1"; }
small="--steps-per-task 900 --eval-every 300 --eval-episodes 2 --hidden 32 --layers 2 \
--start-steps 200 --update-after 200 --threads 1 --quiet --db d.db"
long="--steps-per-task 60000 --eval-every 300 --eval-episodes 1 --hidden 32 --layers 2 \
--start-steps 200 --update-after 200 --threads 1 --quiet --db d.db"
# Wait (up to 60 s, while pid $2 lives) until run $1 has started its first task.
wait_started() {
    i=0
    while [ $i -lt 600 ] && kill -0 "$2" 2>/dev/null; do
        [ "$(q "SELECT count(*) FROM tasks WHERE run_id = $1" 2>/dev/null)" = 1 ] && return 0
        sleep 0.1
        i=$((i + 1))
    done
    bad "run $1 never started"
    return 1
}

# 1. A live owner: the resume is refused with one line naming it.
# shellcheck disable=SC2086
"$crl" train --scenario t1 --method ft1 $long >o1.txt 2>e1.txt &
owner=$!
wait_started 1 $owner
# shellcheck disable=SC2086
# (timeout: a second trainer that is wrongly let in would train for minutes)
timeout -s INT 20 "$crl" train --resume 1 --db d.db --quiet >o2.txt 2>e2.txt
code=$?
[ "$code" != 0 ] || bad "resume of a live run: exit 0"
[ "$(grep -c . e2.txt)" = 1 ] || bad "resume of a live run: not one line: $(cat e2.txt)"
grep -q "being trained by another process" e2.txt && grep -q "pid $owner" e2.txt &&
    grep -q "host $(hostname)" e2.txt && grep -q "last heartbeat" e2.txt ||
    bad "resume of a live run: the line does not name the owner: $(cat e2.txt)"
kill -0 $owner 2>/dev/null || bad "the owner died"
kill -INT $owner
wait $owner
[ "$(q "SELECT status FROM runs WHERE id = 1")" = interrupted ] ||
    bad "owner: status $(q "SELECT status FROM runs WHERE id = 1"), not interrupted"
[ "$(q "SELECT count(*) FROM leases")" = 0 ] || bad "an interrupted run kept its lease"

# 2. Two resumes at once: exactly one trains. (run 1 is interrupted; make
# the rest of it short enough to finish.)
"$crl" train --resume 1 --db d.db --quiet >r1.txt 2>r1e.txt &
a=$!
"$crl" train --resume 1 --db d.db --quiet >r2.txt 2>r2e.txt &
b=$!
sleep 3
kill -INT $a $b 2>/dev/null
wait $a
ca=$?
wait $b
cb=$?
ok=0
[ "$ca" = 130 ] || [ "$ca" = 0 ] && ok=$((ok + 1))
[ "$cb" = 130 ] || [ "$cb" = 0 ] && ok=$((ok + 1))
[ "$ok" = 1 ] || bad "two resumes at once: exits $ca and $cb ($(cat r1e.txt r2e.txt))"
[ "$(cat r1e.txt r2e.txt | grep -c 'being trained by another process')" = 1 ] ||
    bad "two resumes at once: not one refusal: $(cat r1e.txt r2e.txt)"

# 3. A SIGKILLed owner: stale in `crl runs`, taken over at once.
# shellcheck disable=SC2086
"$crl" train --scenario t1 --method ft1 $small >o3.txt 2>e3.txt &
k=$!
wait_started 2 $k
sleep 0.5
kill -KILL $k
wait $k 2>/dev/null
"$crl" runs --db d.db >runs.txt 2>&1
grep -q "^2 .*stale (owner pid $k gone)" runs.txt ||
    bad "crl runs does not show run 2 as stale: $(cat runs.txt)"
t0=$(date +%s)
"$crl" train --resume 2 --db d.db --quiet >o4.txt 2>e4.txt ||
    bad "takeover of a killed owner: exit $? ($(cat e4.txt))"
[ $(($(date +%s) - t0)) -lt 50 ] || bad "takeover of a killed owner waited"
[ "$(q "SELECT status FROM runs WHERE id = 2")" = finished ] ||
    bad "run 2 did not finish after the takeover"
[ "$(q "SELECT count(*) FROM leases WHERE run_id = 2")" = 0 ] ||
    bad "a finished run kept its lease"

# 4. Another host's lease: honoured while its heartbeat is fresh, taken over
# once it expired. (run 3 is killed, its lease then moved to another host.)
# shellcheck disable=SC2086
"$crl" train --scenario t1 --method ft1 $small >o5.txt 2>e5.txt &
k=$!
wait_started 3 $k
sleep 0.5
kill -KILL $k
wait $k 2>/dev/null
now=$(date +%s)
q "UPDATE leases SET host = 'elsewhere.example', pid = 4242, heartbeat = $now - 10
   WHERE run_id = 3"
timeout -s INT 20 "$crl" train --resume 3 --db d.db --quiet >o6.txt 2>e6.txt
[ $? != 0 ] || bad "resume over a fresh foreign lease: exit 0"
[ "$(grep -c . e6.txt)" = 1 ] && grep -q "host elsewhere.example, pid 4242" e6.txt ||
    bad "resume over a fresh foreign lease: $(cat e6.txt)"
"$crl" runs --db d.db | grep -q "^3 .* running " || bad "a live foreign owner shows as stale"
q "UPDATE leases SET heartbeat = $now - 75 WHERE run_id = 3"
"$crl" runs --db d.db | grep -q "^3 .*stale (owner elsewhere.example pid 4242 silent" ||
    bad "an expired foreign lease does not show as stale: $("$crl" runs --db d.db)"
"$crl" train --resume 3 --db d.db --quiet >o7.txt 2>e7.txt ||
    bad "resume over an expired foreign lease: exit $? ($(cat e7.txt))"
[ "$(q "SELECT status FROM runs WHERE id = 3")" = finished ] ||
    bad "run 3 did not finish after the takeover"

# 5. A lock held past the busy timeout: the trainer fails, and says so in
# runs.status.
# shellcheck disable=SC2086
CRL_BUSY_TIMEOUT_MS=300 "$crl" train --scenario t1 --method ft1 $long >o8.txt 2>e8.txt &
k=$!
wait_started 4 $k
printf '.timeout 10000\nBEGIN IMMEDIATE;\n.shell sleep 4\nCOMMIT;\n' | sqlite3 d.db
wait $k
code=$?
[ "$code" != 0 ] || bad "trainer under a 4 s lock: exit 0"
grep -q "locked" e8.txt || bad "trainer under a 4 s lock: $(cat e8.txt)"
st=$(q "SELECT status FROM runs WHERE id = 4")
[ "$st" = failed ] || bad "trainer failed on a lock but runs.status is '$st'"

[ $fail = 0 ] && echo "test_lease: ok"
exit $fail
