#!/bin/sh
# Checksummed checkpoints and blobs (issue 23, item 2; docs/robustness.md
# "Checksums and kept checkpoints"):
#  - a run keeps its last two checkpoints;
#  - a checkpoint whose bytes changed (checksum mismatch) is refused by
#    crl eval and crl export with one line naming the run, the step and
#    the fallback; a resume falls back to the previous checkpoint, saying so
#    in one line, and finishes;
#  - a NaN-filled checkpoint with a correct checksum is refused the same way
#    (the learner's finiteness check);
#  - with no intact checkpoint left, a resume is refused with one line;
#  - an episode blob whose bytes changed is refused by crl replay.
#
# usage: test_checksum.sh CRL_BIN
set -u
crl=$(realpath "$1")
fail=0
work=$(mktemp -d /tmp/crl_test_checksum_XXXXXX) || exit 1
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$work"' EXIT INT TERM
cd "$work" || exit 1

bad() {
    echo "FAIL: $*"
    fail=1
}
q() { sqlite3 -cmd ".timeout 10000" "$1" "$2"; }
copy() { rm -f "$2"; sqlite3 "$1" ".backup '$2'"; }
# damage DB TABLE WHERE MODE: overwrite 1000 bytes in the middle of one
# blob. flip: inverted bytes, checksum left as it was; nan: NaN floats, the
# checksum recomputed (so that only the finiteness check can catch it).
damage() {
    python3 - "$@" <<'PY'
import sqlite3, struct, sys, zlib
db, table, where, mode = sys.argv[1:5]
col = "blob" if table == "checkpoints" else "data"
c = sqlite3.connect(db)
rowid, b = c.execute(f"SELECT rowid, {col} FROM {table} WHERE {where}").fetchone()
b = bytearray(b)
off, n = (len(b) // 2) & ~3, 1000
if mode == "nan":
    b[off:off + n] = struct.pack("<f", float("nan")) * (n // 4)
    c.execute(f"UPDATE {table} SET {col} = ?, crc32 = ? WHERE rowid = ?",
              (bytes(b), zlib.crc32(bytes(b)), rowid))
else:
    b[off:off + n] = bytes(x ^ 0xFF for x in b[off:off + n])
    c.execute(f"UPDATE {table} SET {col} = ? WHERE rowid = ?", (bytes(b), rowid))
c.commit()
PY
}
# one_line FILE WHAT NEEDLE...: FILE has exactly one line holding every NEEDLE.
one_line() {
    f=$1
    what=$2
    shift 2
    [ "$(grep -c . "$f")" = 1 ] || bad "$what: not one line: $(cat "$f")"
    for n in "$@"; do grep -q -- "$n" "$f" || bad "$what: '$n' not in: $(cat "$f")"; done
}

small="--hidden 32 --layers 2 --start-steps 200 --update-after 200 --eval-episodes 2 \
--threads 1 --quiet"
# Run 1: single env, checkpoints at 500, 1000, 1500. Run 2: continual,
# every 300 steps to 2700.
# shellcheck disable=SC2086
"$crl" train --env pendulum --steps 1500 --eval-every 500 $small --db d.db >/dev/null ||
    bad "run 1 failed"
# shellcheck disable=SC2086
"$crl" train --scenario t1 --method ft1 --steps-per-task 900 --eval-every 300 $small \
    --db d.db >/dev/null || bad "run 2 failed"
[ "$(q d.db "SELECT group_concat(step) FROM (SELECT step FROM checkpoints
    WHERE run_id = 1 ORDER BY step)")" = "1000,1500" ] ||
    bad "run 1 keeps checkpoints $(q d.db "SELECT group_concat(step) FROM checkpoints WHERE run_id = 1")"
[ "$(q d.db "SELECT group_concat(step) FROM (SELECT step FROM checkpoints
    WHERE run_id = 2 ORDER BY step)")" = "2400,2700" ] ||
    bad "run 2 keeps checkpoints $(q d.db "SELECT group_concat(step) FROM checkpoints WHERE run_id = 2")"
[ "$(q d.db "SELECT count(*) FROM checkpoints WHERE crc32 IS NULL")" = 0 ] ||
    bad "a checkpoint without a checksum"
[ "$(q d.db "SELECT count(*) FROM episodes WHERE crc32 IS NULL")" = 0 ] ||
    bad "an episode without a checksum"
"$crl" eval --db d.db --run 1 --episodes 1 >/dev/null 2>e.txt || bad "eval of run 1: $(cat e.txt)"
"$crl" eval --db d.db --run 2 --task 0 --episodes 1 >/dev/null 2>e.txt ||
    bad "eval of run 2: $(cat e.txt)"

# Checksum mismatch: eval and export refuse with one line, write nothing.
copy d.db c.db
damage c.db checkpoints "run_id = 1 AND step = 1500" flip
damage c.db checkpoints "run_id = 2 AND step = 2700" flip
for run in 1 2; do
    step=1500 prev=1000
    [ $run = 2 ] && step=2700 prev=2400
    "$crl" eval --db c.db --run $run --episodes 1 >o.txt 2>e.txt
    [ $? != 0 ] || bad "eval of a corrupt checkpoint (run $run): exit 0"
    one_line e.txt "eval, corrupt run $run" "run $run's checkpoint at step $step" \
        "checksum mismatch" "--resume $run" "step $prev"
    "$crl" export --db c.db --run $run -o p$run.crlp >o.txt 2>e.txt
    [ $? != 0 ] || bad "export of a corrupt checkpoint (run $run): exit 0"
    one_line e.txt "export, corrupt run $run" "run $run's checkpoint at step $step" \
        "checksum mismatch"
    [ ! -e p$run.crlp ] || bad "export of a corrupt checkpoint left p$run.crlp"
done

# NaN floats with a correct checksum: the finiteness check refuses them.
copy d.db n.db
damage n.db checkpoints "run_id = 1 AND step = 1500" nan
damage n.db checkpoints "run_id = 2 AND step = 2700" nan
for run in 1 2; do
    "$crl" eval --db n.db --run $run --episodes 1 >o.txt 2>e.txt
    [ $? != 0 ] || bad "eval of a NaN checkpoint (run $run): exit 0"
    one_line e.txt "eval, NaN run $run" "corrupt checkpoint" "not finite"
    "$crl" export --db n.db --run $run -o p$run.crlp >o.txt 2>e.txt
    [ $? != 0 ] || bad "export of a NaN checkpoint (run $run): exit 0"
    one_line e.txt "export, NaN run $run" "corrupt checkpoint" "not finite"
    [ ! -e p$run.crlp ] || bad "export of a NaN checkpoint left p$run.crlp"
done

# Resume: an interrupted run (3) with two checkpoints; its latest damaged.
# shellcheck disable=SC2086
"$crl" train --scenario t1 --method ft1 --steps-per-task 900 --eval-every 300 $small \
    --db d.db >/dev/null 2>&1 &
k=$!
i=0
while [ $i -lt 600 ] && kill -0 $k 2>/dev/null &&
    [ "$(q d.db "SELECT count(*) FROM checkpoints WHERE run_id = 3" 2>/dev/null)" != 2 ]; do
    sleep 0.05
    i=$((i + 1))
done
kill -KILL $k
wait $k 2>/dev/null
[ "$(q d.db "SELECT count(*) FROM checkpoints WHERE run_id = 3")" = 2 ] ||
    bad "run 3 was not killed with two checkpoints"
last=$(q d.db "SELECT max(step) FROM checkpoints WHERE run_id = 3")
prev=$(q d.db "SELECT min(step) FROM checkpoints WHERE run_id = 3")
for mode in flip nan; do
    copy d.db r.db
    damage r.db checkpoints "run_id = 3 AND step = $last" $mode
    "$crl" train --resume 3 --db r.db --quiet >o.txt 2>e.txt ||
        bad "resume past a corrupt ($mode) checkpoint: exit $? ($(cat e.txt))"
    one_line e.txt "resume, $mode" "run 3" "step $last" "falls back to the previous one (step $prev)"
    [ "$(q r.db "SELECT status FROM runs WHERE id = 3")" = finished ] ||
        bad "resume past a corrupt ($mode) checkpoint did not finish"
    [ "$(q r.db "SELECT count(*) FROM evals WHERE run_id = 3")" = 27 ] ||
        bad "resume past a corrupt ($mode) checkpoint: $(q r.db "SELECT count(*) FROM evals WHERE run_id = 3") evals, not 27"
done
# Both damaged: nothing to resume from.
copy d.db r.db
damage r.db checkpoints "run_id = 3 AND step = $last" flip
damage r.db checkpoints "run_id = 3 AND step = $prev" nan
"$crl" train --resume 3 --db r.db --quiet >o.txt 2>e.txt
[ $? != 0 ] || bad "resume with no intact checkpoint: exit 0"
grep -q "no intact checkpoint" e.txt || bad "resume with no intact checkpoint: $(cat e.txt)"
[ "$(grep -c '^crl train:' e.txt)" = 1 ] || bad "resume with no intact checkpoint: $(cat e.txt)"

# An episode blob whose bytes changed: crl replay refuses it in one line.
copy d.db e.db
damage e.db episodes "id = 1" flip
"$crl" replay --db e.db --episode 1 --verify >o.txt 2>e.txt
[ $? != 0 ] || bad "replay of a corrupt episode: exit 0"
one_line e.txt "replay of a corrupt episode" "episode 1 of run 1" "checksum mismatch"
"$crl" replay --db e.db --episode 2 --verify >o.txt 2>e.txt ||
    bad "replay of an intact episode: $(cat o.txt e.txt)"

[ $fail = 0 ] && echo "test_checksum: ok"
exit $fail
