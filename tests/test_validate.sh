#!/bin/sh
# Validation before writing and config errors (issue 23, items 3, 5 and 8;
# docs/robustness-validation.md):
# - a bad value, a budget that cannot fit, conflicting, repeated and other
#   methods' flags are refused with ONE line and exit 2, and the database is
#   byte-for-byte as it was (sha256 before and after); with a new --db path
#   no file is created;
# - a read-only database folder is reported with the OS's reason (a
#   read-only tmpfs; skipped with a reason when it cannot be mounted);
# - a damaged runs.config_json (not JSON, a missing key, a malformed value)
#   gives crl eval, crl export and crl train --resume one line, labelled
#   with the running command, naming the run and the key.
#
# usage: test_validate.sh CRL_BIN
set -u
crl=$1
fail=0
work=$(mktemp -d /tmp/crl_test_validate_XXXXXX) || exit 1
mnt=""
cleanup() {
    [ -n "$mnt" ] && umount "$mnt" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT INT TERM
cd "$work" || exit 1

bad() {
    echo "FAIL: $*"
    fail=1
}

small="--hidden 8 --layers 1 --batch 8 --start-steps 50 --update-after 50 \
--eval-episodes 1 --threads 1 --log-train-episodes none --quiet"

# Two finished runs: a continual one (1) and a single-env one (2).
# shellcheck disable=SC2086
"$crl" train --db base.db --scenario t1 --method ft1 --steps-per-task 200 \
    --eval-every 200 $small >/dev/null 2>&1 || bad "setup: continual run"
# shellcheck disable=SC2086
"$crl" train --db base.db --env pendulum --steps 200 --eval-every 200 $small \
    >/dev/null 2>&1 || bad "setup: env run"
cp base.db a.db
h0=$(sha256sum a.db | cut -d' ' -f1)

# refused EXPECT ARGS...: exit 2, one stderr line holding EXPECT, a.db
# unchanged, and a new database path never created.
refused() {
    expect=$1
    shift
    rm -f a.db a.db-wal a.db-shm
    cp base.db a.db
    "$crl" train --db a.db "$@" >out.txt 2>err.txt
    code=$?
    [ "$code" = 2 ] || bad "$*: exit $code, not 2: $(cat err.txt)"
    n=$(grep -c . err.txt)
    [ "$n" = 1 ] || bad "$*: $n lines: $(cat err.txt)"
    grep -q -e "$expect" err.txt || bad "$*: no '$expect' in: $(cat err.txt)"
    [ ! -s out.txt ] || bad "$*: printed $(cat out.txt)"
    h=$(sha256sum a.db | cut -d' ' -f1)
    [ "$h" = "$h0" ] || bad "$*: the database changed"
    [ ! -e a.db-wal ] || [ ! -s a.db-wal ] || bad "$*: a WAL was left with data"
    rm -f new.db
    "$crl" train --db new.db "$@" >/dev/null 2>&1
    [ ! -e new.db ] || bad "$*: new.db was created"
    rm -f new.db new.db-wal new.db-shm
}

# Item 3: values the learner or a method would refuse only once the run
# exists.
refused "unknown method 'nosuch'" --scenario t1 --method nosuch --steps-per-task 100
refused "batch must be >= 2" --env pendulum --batch 1 --steps 100
refused "batch must be >= 2" --scenario t1 --method ft1 --batch 1 --steps-per-task 100
refused "validation rollouts" --scenario t1 --method csp --steps-per-task 100
refused "needs --base" --scenario t1 --method l2m --steps-per-task 100
refused "must be RUN\[:TASK\]" --scenario t1 --method l2m --base 1x \
    --steps-per-task 100
refused "run 7 has no checkpoint" --scenario t1 --method l2m --base 7 \
    --steps-per-task 100
refused "cannot be split" --scenario t1 --method l2m --base 1 --l2m-oracle \
    --l2m-pool 2 --steps-per-task 100
# Item 8: conflicting, repeated and other methods' flags, naming both.
refused "--task and --env-xml conflict" --task pendulum --env-xml x.xml --steps 100
refused "--lr is given twice (--lr 0.001 and --lr 0.002)" --env pendulum \
    --lr 0.001 --lr 0.002 --steps 100
refused "--hidden is given twice" --env pendulum --hidden 8 --hid 16 --steps 100
refused "--quiet is given twice" --env pendulum --quiet --quiet --steps 100
refused "--csp-peaked is an option of method csp, not of --method ewc" \
    --scenario t1 --method ewc --csp-peaked 1 --steps-per-task 100
refused "--l2m-pool is an option of method l2m, not of --method ewc" \
    --scenario t1 --method ewc --l2m-pool 3 --steps-per-task 100
refused "--base is an option of method l2m, not of --method csp" \
    --scenario t1 --method csp --base 1 --steps-per-task 2000
refused "--l2-coef is an option of method l2, not of --method ewc" \
    --scenario t1 --method ewc --l2-coef 3 --steps-per-task 100
refused "--single-task is an option of method single, not of --method ft1" \
    --scenario t1 --method ft1 --single-task 1 --steps-per-task 100
# The repeated-flag rule is every command's (cli/opts.c).
"$crl" runs --db a.db --db a.db >/dev/null 2>err.txt
[ $? = 2 ] && grep -q "given twice" err.txt || bad "crl runs --db twice: $(cat err.txt)"
"$crl" eval --db a.db --run 1 --run 2 >/dev/null 2>err.txt
[ $? = 2 ] && grep -q "given twice" err.txt || bad "crl eval --run twice: $(cat err.txt)"

# A read-only folder is named as such, not as a missing file.
mkdir ro
if mount -t tmpfs -o ro,size=64k tmpfs ro 2>/dev/null; then
    mnt=$work/ro
    "$crl" train --db ro/x.db --env pendulum --steps 100 --quiet >/dev/null 2>err.txt
    code=$?
    [ "$code" != 0 ] || bad "read-only folder: exit 0"
    grep -q "Read-only file system" err.txt ||
        bad "read-only folder: $(cat err.txt)"
    grep -q "No such file" err.txt && bad "read-only folder: says missing file"
    # Every command that creates a file there says so (the store's check).
    "$crl" dataset --tasks reach --episodes 1 -o ro/d.db --quiet >/dev/null 2>err.txt
    [ $? != 0 ] && grep -q "Read-only file system" err.txt ||
        bad "crl dataset into a read-only folder: $(cat err.txt)"
    umount ro && mnt=""
else
    echo "skip: read-only folder (cannot mount a tmpfs here)"
fi

# Item 5: a damaged config_json, for eval, export and resume of both runs.
# damaged SQL EXPECT: every command gives one line "crl CMD: run N: ...EXPECT".
damaged() {
    sql=$1
    expect=$2
    for run in 1 2; do
        rm -f c.db c.db-wal c.db-shm
        cp base.db c.db
        sqlite3 c.db "update runs set status = 'interrupted'; $sql" ||
            bad "sqlite3 $sql"
        for cmd in eval export train; do
            case $cmd in
            eval) "$crl" eval --db c.db --run $run --episodes 1 >out.txt 2>err.txt ;;
            export) "$crl" export --db c.db --run $run -o p.crlp >out.txt 2>err.txt ;;
            train) "$crl" train --db c.db --resume $run --quiet >out.txt 2>err.txt ;;
            esac
            code=$?
            [ "$code" != 0 ] || bad "$cmd run $run ($sql): exit 0"
            n=$(grep -c . err.txt)
            [ "$n" = 1 ] || bad "$cmd run $run ($sql): $n lines: $(cat err.txt)"
            grep -q "^crl $cmd: run $run: .*$expect" err.txt ||
                bad "$cmd run $run ($sql): $(cat err.txt)"
        done
    done
}
command -v sqlite3 >/dev/null || {
    echo "FAIL: sqlite3 is needed"
    exit 1
}
damaged "update runs set config_json = '{not json'" "config_json is not a valid JSON"
damaged "update runs set config_json = json_remove(config_json, '\$.scenario')" \
    "config_json has no key 'scenario'"
damaged "update runs set config_json = json_remove(config_json, '\$.method')" \
    "config_json has no key 'method'"
damaged "update runs set config_json = json_set(config_json, '\$.lr', 'abc')" \
    "config key 'lr' is 'abc' (must be a number"
damaged "update runs set config_json = json_set(config_json, '\$.batch', 2.5)" \
    "config key 'batch' is '2.5' (must be a whole number"
damaged "update runs set config_json = json_set(config_json, '\$.scenario', 't9')" \
    "config key 'scenario' is 't9'"
damaged "update runs set config_json = json_set(config_json, '\$.log-train-episodes', 'x')" \
    "config key 'log-train-episodes' is 'x'"

[ "$fail" = 0 ] && echo "ok: bad input is refused before writing; damaged configs name the key"
exit $fail
