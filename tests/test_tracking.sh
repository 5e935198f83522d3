#!/bin/sh
# Run tracking and metric export (issue 24, items 2 and 3; docs/tracking.md):
#  1. crl train --name/--tag (tag repeatable) stores the labels; bad labels,
#     and labels with --resume, are refused with one line, exit 2, and no
#     database is created;
#  2. crl runs shows them, filters by --status/--method/--tag, and writes
#     --format table|csv|json (json and csv parsed back); bad values exit 2;
#  3. crl diff RUN_A RUN_B prints one line per differing key, exactly the
#     keys whose flags differ; bad ids exit 2;
#  4. crl rm deletes the run and every row that refers to it (every table
#     with a run_id column, read from sqlite_master), leaves the other runs
#     as they were, refuses a run under a live lease (nothing deleted) and a
#     run that does not exist;
#  5. crl export-metrics writes CSV whose numbers read back exactly as
#     stored, a TensorBoard event file that an independent reader
#     (tests/tfevents_read.py: CRC32C and protobuf by hand) reads back to
#     the same scalars (as float32), and a Parquet file that another
#     independent reader (tests/parquet_read.py: Thrift compact by hand)
#     reads back exactly, NULL values included; bad input exits 1 or 2 and
#     creates nothing.
#
# usage: test_tracking.sh CRL_BIN SOURCE_DIR
set -u
crl=$(realpath "$1")
src=$(realpath "$2")
py=/usr/bin/python3
fail=0
work=$(mktemp -d /tmp/crl_test_tracking_XXXXXX) || exit 1
trap 'rm -rf "$work"' EXIT INT TERM
cd "$work" || exit 1

bad() {
    echo "FAIL: $*"
    fail=1
}
q() { sqlite3 -cmd ".timeout 10000" d.db "$1"; }
# expect CODE CMD...: the command exits CODE with exactly one line on stderr.
expect() {
    want=$1
    shift
    "$@" >out.txt 2>err.txt
    got=$?
    [ "$got" = "$want" ] || bad "'$*' exited $got, not $want: $(cat err.txt)"
    [ "$(wc -l <err.txt)" = 1 ] || bad "'$*' wrote $(wc -l <err.txt) lines to stderr, not 1: $(cat err.txt)"
}
tiny="--env pendulum --eval-every 300 --eval-episodes 1 --layers 1 \
--start-steps 100 --update-after 100 --threads 1 --quiet --db d.db"

# ---- 1. train --name / --tag --------------------------------------------------
expect 2 "$crl" train $tiny --steps 300 --name ""
expect 2 "$crl" train $tiny --steps 300 --tag "a,b"
expect 2 "$crl" train $tiny --steps 300 --tag "two words"
expect 2 "$crl" train $tiny --steps 300 --tag x --tag x
expect 2 "$crl" train $tiny --steps 300 --name "$(printf 'a\tb')"
expect 2 "$crl" train $tiny --steps 300 --name "$(head -c 200 /dev/zero | tr '\0' n)"
expect 2 "$crl" train $tiny --steps 300 --name a --name b
[ -e d.db ] && bad "a refused train created d.db"

"$crl" train $tiny --hidden 16 --steps 300 --name first --tag base --tag small >/dev/null 2>err.txt ||
    bad "train 1 failed: $(cat err.txt)"
"$crl" train $tiny --steps 600 --hidden 32 --seed 7 --name second --tag small >/dev/null \
    2>err.txt || bad "train 2 failed: $(cat err.txt)"
"$crl" train $tiny --hidden 16 --steps 300 --seed 3 >/dev/null 2>err.txt || bad "train 3 failed: $(cat err.txt)"
expect 2 "$crl" train --resume 1 --db d.db --name again
expect 2 "$crl" train --resume 1 --db d.db --tag again
[ "$(q "SELECT group_concat(tag, ',') FROM (SELECT tag FROM run_tags WHERE run_id = 1 ORDER BY pos)")" = "base,small" ] ||
    bad "run 1's tags: $(q 'SELECT * FROM run_tags')"
[ "$(q "SELECT name FROM runs WHERE id = 2")" = second ] || bad "run 2's name not stored"
[ "$(q "SELECT name IS NULL FROM runs WHERE id = 3")" = 1 ] || bad "run 3 has a name"
q "SELECT config_json FROM runs" | grep -q -e '"name"' -e '"tag' &&
    bad "labels leaked into config_json"

# ---- 2. runs --------------------------------------------------------------------
"$crl" runs --db d.db >runs.txt 2>err.txt || bad "runs failed: $(cat err.txt)"
grep -q "^1 .*first .*base,small .*sac .*pendulum .*finished .* 300 .*return -" runs.txt ||
    bad "runs table row 1: $(cat runs.txt)"
ids() { "$crl" runs --db d.db --format csv "$@" | tail -n +2 | cut -d, -f1 | tr '\n' ' '; }
[ "$(ids --tag small)" = "1 2 " ] || bad "--tag small: $(ids --tag small)"
[ "$(ids --tag small --tag base)" = "1 " ] || bad "--tag small --tag base: $(ids --tag small --tag base)"
[ "$(ids --tag nope)" = "" ] || bad "--tag nope: $(ids --tag nope)"
[ "$(ids --method sac)" = "1 2 3 " ] || bad "--method sac: $(ids --method sac)"
[ "$(ids --method ewc)" = "" ] || bad "--method ewc listed runs"
[ "$(ids --status finished)" = "1 2 3 " ] || bad "--status finished: $(ids --status finished)"
[ "$(ids --status running)" = "" ] || bad "--status running listed runs"
q "UPDATE runs SET status = 'interrupted' WHERE id = 3"
[ "$(ids --status interrupted)" = "3 " ] || bad "--status interrupted: $(ids --status interrupted)"
# A 'running' run whose owner is gone shows (and filters) as stale.
q "UPDATE runs SET status = 'running' WHERE id = 3"
q "INSERT INTO leases (run_id, host, pid, pid_start, since, heartbeat)
   VALUES (3, '$(hostname)', 2147483646, 0, 0, 0)"
[ "$(ids --status stale)" = "3 " ] || bad "--status stale: $(ids --status stale)"
[ "$(ids --status running)" = "" ] || bad "--status running listed a stale run"
"$crl" runs --db d.db | grep -q "^3 .*stale (owner pid 2147483646 gone)" ||
    bad "the table does not show run 3 as stale: $("$crl" runs --db d.db)"
q "DELETE FROM leases WHERE run_id = 3"
q "UPDATE runs SET status = 'finished' WHERE id = 3"
"$crl" runs --db d.db --format json >runs.json 2>err.txt || bad "runs json failed"
"$py" - "$work/d.db" <<'EOF' || bad "runs --format json does not match the store"
import json, sqlite3, sys
runs = json.load(open("runs.json"))
db = sqlite3.connect(sys.argv[1])
assert [r["id"] for r in runs] == [1, 2, 3], runs
assert runs[0]["name"] == "first" and runs[0]["tags"] == ["base", "small"], runs[0]
assert runs[2]["name"] is None and runs[2]["tags"] == [], runs[2]
for r in runs:
    step, = db.execute("SELECT max(step) FROM evals WHERE run_id = ?", (r["id"],)).fetchone()
    mean, = db.execute("SELECT avg(mean_return) FROM evals WHERE run_id = ? AND step = ?",
                       (r["id"], step)).fetchone()
    assert r["eval_step"] == step and r["score_kind"] == "return", r
    assert abs(r["score"] - mean) <= 1e-9 * abs(mean), (r, mean)
    assert r["status"] == "finished" and r["method"] == "sac", r
EOF
"$crl" runs --db d.db --format csv >runs.csv 2>err.txt || bad "runs csv failed"
"$py" - <<'EOF' || bad "runs --format csv does not parse"
import csv
rows = list(csv.DictReader(open("runs.csv")))
assert [r["tags"] for r in rows] == ["base,small", "small", ""], rows
assert [r["name"] for r in rows] == ["first", "second", ""], rows
EOF
expect 2 "$crl" runs --db d.db --format xml
expect 2 "$crl" runs --db d.db --status ended
expect 2 "$crl" runs --db d.db --tag "a,b"
expect 2 "$crl" runs --db d.db --format csv --format json
expect 1 "$crl" runs --db missing.db
[ -e missing.db ] && bad "runs created missing.db"

# ---- 3. diff ------------------------------------------------------------------------
"$crl" diff --db d.db 1 2 >diff.txt 2>err.txt || bad "diff failed: $(cat err.txt)"
cat >want.txt <<'EOF'
hidden: 16 -> 32
seed: 0 -> 7
steps: 300 -> 600
EOF
cmp -s diff.txt want.txt || bad "diff 1 2: $(cat diff.txt)"
"$crl" diff --db d.db 1 1 >diff.txt 2>/dev/null || bad "diff 1 1 failed"
[ -s diff.txt ] && bad "diff of a run with itself printed $(cat diff.txt)"
# A key only one run has, and a string value.
q "UPDATE runs SET config_json = json_set(config_json, '$.extra', 'x y') WHERE id = 3"
"$crl" diff --db d.db 1 3 >diff.txt 2>err.txt || bad "diff 1 3 failed"
grep -qx 'extra: (absent) -> "x y"' diff.txt || bad "diff 1 3 misses the extra key: $(cat diff.txt)"
expect 2 "$crl" diff --db d.db 1
expect 2 "$crl" diff --db d.db 1 2 3
expect 2 "$crl" diff --db d.db 1 x
expect 2 "$crl" diff --db d.db 1 99
expect 2 "$crl" diff 1 2
expect 1 "$crl" diff --db missing.db 1 2

# ---- 5. export-metrics (before rm: run 2 is exported) ----------------------------------
expect 2 "$crl" export-metrics --db d.db --run 2 --format xls -o ex
expect 2 "$crl" export-metrics --db d.db --run 2 --format "" -o ex
expect 2 "$crl" export-metrics --db d.db --run 2 --format csv --format parquet -o ex
expect 2 "$crl" export-metrics --db d.db --run 99 --format csv -o ex
expect 2 "$crl" export-metrics --db d.db --run 2 --format csv
expect 2 "$crl" export-metrics --db d.db --run 0 --format csv -o ex
expect 1 "$crl" export-metrics --db missing.db --run 2 --format csv -o ex
[ -e ex ] && bad "a refused export-metrics created ex"
touch afile
expect 1 "$crl" export-metrics --db d.db --run 2 --format csv -o afile
expect 1 "$crl" export-metrics --db d.db --run 2 --format tensorboard -o nodir/ex
[ -e nodir ] && bad "export-metrics created nodir"
# A NULL value between others, and keys CSV must quote or that are not ASCII.
q "INSERT INTO metrics (run_id, step, key, value) VALUES (2, 150, 'test/null', NULL),
   (2, 150, 'test/a,\"b', 0.1), (2, 150, 'test/café', 1e-300),
   (2, 160, 'test/null', NULL), (2, 170, 'test/null', 2.5)"
"$crl" export-metrics --db d.db --run 2 --format parquet -o ex >/dev/null 2>err.txt ||
    bad "parquet export failed: $(cat err.txt)"
"$crl" export-metrics --db d.db --run 2 --format csv -o ex >/dev/null 2>err.txt ||
    bad "csv export failed: $(cat err.txt)"
"$crl" export-metrics --db d.db --run 2 --format tensorboard -o ex >/dev/null 2>err.txt ||
    bad "tensorboard export failed: $(cat err.txt)"
[ "$(ls -A ex | tr '\n' ' ')" = "run-2 run-2.csv run-2.parquet " ] || bad "ex holds $(ls -A ex)"
[ "$(ls -A ex/run-2)" = "events.out.tfevents.run-2.crl" ] || bad "ex/run-2 holds $(ls -A ex/run-2)"
"$py" "$src/tests/tfevents_read.py" ex/run-2/events.out.tfevents.run-2.crl >tb.txt 2>err.txt ||
    bad "the event file does not read back: $(cat err.txt)"
"$py" "$src/tests/parquet_read.py" ex/run-2.parquet >pq.txt 2>err.txt ||
    bad "the parquet file does not read back: $(cat err.txt)"
"$py" - "$work/d.db" <<'EOF' || bad "exported scalars differ from the store"
import csv, sqlite3, struct, sys
db = sqlite3.connect(sys.argv[1])
want = {}
for step, key, value in db.execute("SELECT step, key, value FROM metrics WHERE run_id = 2"):
    want[(step, key)] = value
names = dict(db.execute("SELECT idx, name FROM tasks WHERE run_id = 2"))
for step, t, sr, mr, dr in db.execute(
        "SELECT step, eval_task_idx, success_rate, mean_return, det_return FROM evals"
        " WHERE run_id = 2"):
    base = "eval/%d_%s" % (t, names[t])
    want[(step, base + "/success_rate")] = sr
    want[(step, base + "/mean_return")] = mr
    if dr is not None:
        want[(step, base + "/det_return")] = dr
assert len(want) > 5, want
rows = list(csv.reader(open("ex/run-2.csv")))
assert rows[0] == ["step", "key", "value"], rows[0]
got = {(int(s), k): (float(v) if v else None) for s, k, v in rows[1:]}
assert len(got) == len(rows) - 1, "duplicate rows"
assert got == want, (sorted(set(got.items()) ^ set(want.items()))[:5])
tb = [l.split("\t") for l in open("tb.txt").read().splitlines()]
assert tb[0] == ["version", "brain.Event:2"], tb[0]
got_tb = {(int(s), k): float(v) for s, k, v in tb[1:]}
f32 = lambda x: struct.unpack("<f", struct.pack("<f", x))[0]
assert got_tb == {k: f32(v) for k, v in want.items() if v is not None}, "tensorboard scalars"
pq = [l.split("\t") for l in open("pq.txt", encoding="utf-8").read().splitlines()]
assert pq[0] == ["step", "key", "value"], pq[0]
got_pq = {(int(s), k): (None if v == "None" else float(v)) for s, k, v in pq[1:]}
assert len(got_pq) == len(pq) - 1 and got_pq == want, "parquet scalars"
assert [(int(s), k) for s, k, _ in pq[1:]] == sorted(want), "parquet rows not in (step, key) order"
assert sum(v is None for v in want.values()) == 2 and (150, 'test/a,"b') in want
EOF
# A damaged event file is caught by the reader (its CRC check is real).
cp ex/run-2/events.out.tfevents.run-2.crl broken
printf 'X' | dd of=broken bs=1 seek=40 conv=notrunc 2>/dev/null
"$py" "$src/tests/tfevents_read.py" broken >/dev/null 2>&1 && bad "the reader accepts a damaged file"

# ---- 4. rm -------------------------------------------------------------------------------
# Every table with a run_id column (runs by id), read from the schema.
tables=$(q "SELECT m.name FROM sqlite_master m WHERE m.type = 'table' AND EXISTS
  (SELECT 1 FROM pragma_table_info(m.name) c WHERE c.name = 'run_id')")
[ -n "$tables" ] || bad "no table has a run_id column"
refs() {
    n=$(q "SELECT count(*) FROM runs WHERE id = $1")
    for t in $tables; do n="$n $t=$(q "SELECT count(*) FROM \"$t\" WHERE run_id = $1")"; done
    echo "$n"
}
before1=$(refs 1)
before3=$(refs 3)
before2=$(refs 2)
case "$before2" in *"metrics=0"* | *"evals=0"* | *"run_tags=0"* | *"tasks=0"*)
    bad "run 2 owns too little to test rm: $before2" ;; esac
# A live lease (this shell's pid on this host): refused, nothing deleted.
q "INSERT INTO leases (run_id, host, pid, pid_start, since, heartbeat)
   VALUES (2, '$(hostname)', $$, 0, 0, 0)"
before2=$(refs 2)
expect 1 "$crl" rm --db d.db --run 2
grep -q "being trained" err.txt || bad "rm under a lease: $(cat err.txt)"
[ "$(refs 2)" = "$before2" ] || bad "rm under a live lease changed run 2: $before2 -> $(refs 2)"
[ "$(q 'SELECT count(*) FROM runs WHERE id = 2')" = 1 ] || bad "rm under a live lease deleted run 2"
[ "$(q 'SELECT count(*) FROM metrics WHERE run_id = 2')" -gt 0 ] || bad "rm under a live lease deleted metrics"
# A stale lease (a pid that does not exist) does not protect the run.
q "UPDATE leases SET pid = 2147483646 WHERE run_id = 2"
"$crl" rm --db d.db --run 2 >out.txt 2>err.txt || bad "rm 2 failed: $(cat err.txt)"
grep -q "^run 2 removed" out.txt || bad "rm said $(cat out.txt)"
for t in $tables; do
    n=$(q "SELECT count(*) FROM \"$t\" WHERE run_id = 2")
    [ "$n" = 0 ] || bad "rm left $n rows of run 2 in $t"
done
[ "$(q 'SELECT count(*) FROM runs WHERE id = 2')" = 0 ] || bad "rm left run 2 in runs"
[ "$(refs 1)" = "$before1" ] || bad "rm of run 2 changed run 1: $before1 -> $(refs 1)"
[ "$(refs 3)" = "$before3" ] || bad "rm of run 2 changed run 3: $before3 -> $(refs 3)"
[ "$(q 'PRAGMA foreign_key_check')" = "" ] || bad "dangling references after rm"
[ "$(q 'PRAGMA integrity_check')" = ok ] || bad "integrity_check after rm"
expect 2 "$crl" rm --db d.db --run 2
expect 2 "$crl" rm --db d.db
expect 2 "$crl" rm --db d.db --run x
expect 2 "$crl" rm --db d.db --run 1 --run 3
expect 1 "$crl" rm --db missing.db --run 1
[ -e missing.db ] && bad "rm created missing.db"
[ "$(q 'SELECT count(*) FROM runs')" = 2 ] || bad "refused rm calls deleted runs"

[ $fail = 0 ] && echo "test_tracking: all checks passed"
exit $fail
