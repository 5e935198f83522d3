#!/bin/sh
# Atomic outputs on a full disk (issue 23, item 4; docs/robustness.md): every
# file crl writes goes to a temporary file in the destination's folder and is
# renamed when complete, so a write that fails leaves no file behind, an
# existing output stays as it was, and the error line gives the OS reason.
#
# A 64 KiB tmpfs is mounted and filled up to its last page, then crl plot
# (png, svg), render, export (a policy, --task-xml), merge and dataset write
# into it, and export-metrics into a folder there. Needs root to mount:
# otherwise it is skipped (exit 77) with the reason printed.
#
# usage: test_atomic_outputs.sh CRL_BIN SOURCE_DIR
set -u
crl=$1
src=$2
fail=0
work=$(mktemp -d /tmp/crl_test_atomic_XXXXXX) || exit 1
mnt=$work/full
mkdir "$mnt"
if [ "$(id -u)" != 0 ]; then
    echo "SKIP: not root, cannot mount a small tmpfs: full-disk outputs not tested"
    rm -rf "$work"
    exit 77
fi
if ! mount -t tmpfs -o size=64k crl-test-full "$mnt" 2>"$work/mount.err"; then
    echo "SKIP: cannot mount a tmpfs ($(cat "$work/mount.err")): full-disk outputs not tested"
    rm -rf "$work"
    exit 77
fi
trap 'umount "$mnt" 2>/dev/null; rm -rf "$work"' EXIT INT TERM
cp "$src/tests/data/v0/v0.db" "$work/v0.db"
export CRL_BUSY_TIMEOUT_MS=2000

bad() {
    echo "FAIL: $*"
    fail=1
}

# The commands, one per line: NAME EXT ARGS (the output is appended as -o).
cat >"$work/cmds" <<EOF
plot-png png plot --db $work/v0.db --run 2
plot-svg svg plot --db $work/v0.db --run 2
render png render --task pendulum --width 320 --height 240
export crlp export --db $work/v0.db --run 2
task-xml xml export --task-xml push
merge db merge $work/v0.db
dataset db dataset --tasks reach --episodes 2 --quiet
EOF

# 1. On a disk with room: each writes its file and leaves nothing else.
mkdir "$work/ok"
while read -r name ext args; do
    out=$work/ok/$name.$ext
    # shellcheck disable=SC2086
    if ! $crl $args -o "$out" >/dev/null 2>"$work/err"; then
        bad "$name: failed with room on the disk: $(cat "$work/err")"
    fi
    [ -s "$out" ] || bad "$name: wrote no $out"
done <"$work/cmds"
left=$(ls -A "$work/ok" | grep -v -e '^plot-png.png$' -e '^plot-svg.svg$' \
    -e '^render.png$' -e '^export.crlp$' -e '^task-xml.xml$' -e '^merge.db$' \
    -e '^dataset.db$')
[ -z "$left" ] || bad "files left beside the outputs: $left"

# 2. Existing outputs (for the files written whole: plots, renders, exports)
#    and the disk filled to its last page (4 KiB free: every output here is
#    larger, so each write starts and then fails with ENOSPC).
for ext in png svg crlp xml; do
    printf 'earlier output\n' >"$mnt/keep.$ext"
done
dd if=/dev/zero of="$mnt/fill" bs=4096 2>/dev/null
truncate -s -4096 "$mnt/fill"
before=$(ls -A "$mnt" | sort | tr '\n' ' ')

while read -r name ext args; do
    for target in "new-$name.$ext" "keep.$ext"; do
        case "$target" in keep.db) continue ;; esac
        out=$mnt/$target
        # shellcheck disable=SC2086
        $crl $args -o "$out" >/dev/null 2>"$work/err"
        code=$?
        msg=$(cat "$work/err")
        if [ "$code" = 0 ]; then
            bad "$name -o $target: exit 0 on a full disk"
        fi
        case "$msg" in
        *"No space left on device"* | *"disk full"*) ;;
        *) bad "$name -o $target: the error does not give the OS reason: $msg" ;;
        esac
        lines=$(printf '%s\n' "$msg" | grep -c .)
        [ "$lines" -le 1 ] || bad "$name -o $target: $lines error lines: $msg"
        now=$(ls -A "$mnt" | sort | tr '\n' ' ')
        [ "$now" = "$before" ] || bad "$name -o $target: left files: '$now' (before: '$before')"
        case "$target" in
        keep.*)
            [ "$(cat "$out")" = "earlier output" ] ||
                bad "$name -o $target: the existing file was changed"
            ;;
        esac
        # Clean up whatever a failing version left, for the next command.
        for f in "$mnt"/* "$mnt"/.[!.]*; do
            [ -e "$f" ] || continue
            case "$(basename "$f")" in fill | keep.*) ;; *) rm -f "$f" ;; esac
        done
        case "$target" in
        keep.*) printf 'earlier output\n' >"$mnt/$target" 2>/dev/null ;;
        esac
    done
done <"$work/cmds"

# 3. crl export-metrics (docs/tracking.md): -o is a folder, created when
#    missing. On the full disk each format fails with the OS reason, leaves
#    no file or folder behind, and an earlier export stays as it was.
# 500 more metric rows make every format larger than the free space.
sqlite3 "$work/v0.db" "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c
  WHERE i < 500) INSERT INTO metrics (run_id, step, key, value)
  SELECT 6, i, 'test/fill', i * 0.5 FROM c"
for fmt in csv tensorboard parquet; do
    $crl export-metrics --db "$work/v0.db" --run 6 --format "$fmt" -o "$work/ok-ex" \
        >/dev/null 2>"$work/err" || bad "export-metrics $fmt failed with room: $(cat "$work/err")"
done
big=$(find "$work/ok-ex" -type f -size +8k | wc -l)
[ "$big" = 3 ] || bad "export-metrics: run 6's exports are not all larger than the free space"
# An earlier export, written while there is room; then the disk is full again.
rm -f "$mnt/fill"
mkdir -p "$mnt/keep-ex/run-6"
for f in run-6.csv run-6.parquet run-6/events.out.tfevents.run-6.crl; do
    printf 'earlier output\n' >"$mnt/keep-ex/$f"
done
dd if=/dev/zero of="$mnt/fill" bs=4096 2>/dev/null
truncate -s -4096 "$mnt/fill"
before=$(ls -AR "$mnt" | tr '\n' ' ')
for fmt in csv tensorboard parquet; do
    for dir in new-ex keep-ex; do
        $crl export-metrics --db "$work/v0.db" --run 6 --format "$fmt" -o "$mnt/$dir" \
            >/dev/null 2>"$work/err"
        code=$?
        msg=$(cat "$work/err")
        [ "$code" != 0 ] || bad "export-metrics $fmt -o $dir: exit 0 on a full disk"
        case "$msg" in
        *"No space left on device"* | *"disk full"*) ;;
        *) bad "export-metrics $fmt -o $dir: the error does not give the OS reason: $msg" ;;
        esac
        [ "$(printf '%s\n' "$msg" | grep -c .)" -le 1 ] || bad "export-metrics: $msg"
        now=$(ls -AR "$mnt" | tr '\n' ' ')
        [ "$now" = "$before" ] || bad "export-metrics $fmt -o $dir: left '$now' (before: '$before')"
        rm -rf "$mnt/new-ex"
    done
done
for f in run-6.csv run-6.parquet run-6/events.out.tfevents.run-6.crl; do
    [ "$(cat "$mnt/keep-ex/$f")" = "earlier output" ] || bad "export-metrics changed keep-ex/$f"
done

if [ "$fail" = 0 ]; then
    echo "ok: plot (png, svg), render, export, export --task-xml, merge, dataset, export-metrics leave no file on a full disk"
fi
exit $fail
