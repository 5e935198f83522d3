#!/bin/sh
# Diverging physics (issue 23, item 7; docs/robustness.md): a user MJCF whose
# simulation blows up (timestep 0.5 s on stiff joints) fails the run with one
# line naming the task and the env step, exit non-zero and run status
# "failed"; MuJoCo's warning is never printed per step (at most once, and
# no MUJOCO_LOG.TXT); a stable model trains to "finished" as before.
#
# usage: test_diverge.sh CRL_BIN
set -u
crl=$1
fail=0
work=$(mktemp -d /tmp/crl_test_diverge_XXXXXX) || exit 1
trap 'rm -rf "$work"' EXIT INT TERM
cd "$work" || exit 1

bad() {
    echo "FAIL: $*"
    fail=1
}

cat >unstable.xml <<'EOF'
<mujoco model='unstable'>
  <option timestep='0.5'/>
  <worldbody>
    <body name='arm' pos='0 0 1'>
      <joint name='hinge' type='hinge' axis='0 1 0' stiffness='2000'/>
      <geom type='capsule' fromto='0 0 0 0.5 0 0' size='0.05' mass='1'/>
      <body name='arm2' pos='0.5 0 0'>
        <joint name='hinge2' type='hinge' axis='0 1 0' stiffness='2000'/>
        <geom type='capsule' fromto='0 0 0 0.5 0 0' size='0.05' mass='1'/>
      </body>
    </body>
  </worldbody>
  <actuator><motor joint='hinge' gear='100' ctrlrange='-1 1' ctrllimited='true'/></actuator>
</mujoco>
EOF
sed "s/timestep='0.5'/timestep='0.002'/; s/stiffness='2000'/stiffness='1'/g" \
    unstable.xml >stable.xml

small="--hidden 16 --layers 2 --batch 16 --start-steps 100 --update-after 100 \
--update-every 50 --eval-every 300 --eval-episodes 1 --buffer-size 5000 --threads 1"

for quiet in --quiet ""; do
    rm -f d.db d.db-wal d.db-shm
    # shellcheck disable=SC2086
    "$crl" train --env-xml unstable.xml --db d.db --steps 3000 $small $quiet \
        >out.txt 2>err.txt
    code=$?
    [ "$code" != 0 ] || bad "unstable ($quiet): exit 0"
    # One error line (without --quiet, crl's informational lines may come
    # before it).
    n=$(grep -c "^crl train:" err.txt)
    [ -n "$quiet" ] && n=$(grep -c . err.txt)
    [ "$n" = 1 ] || bad "unstable ($quiet): $n error lines: $(cat err.txt)"
    grep -q "task 'unstable.xml'" err.txt && grep -q "diverged" err.txt &&
        grep -q "env step [0-9]" err.txt ||
        bad "unstable ($quiet): the line does not name the task and step: $(cat err.txt)"
    # MuJoCo's own text ("Nan, Inf or huge value in QACC ...", "WARNING: ...")
    # appears at most once in everything printed.
    w=$(cat out.txt err.txt | grep -c -i -e "WARNING" -e "huge value")
    [ "$w" -le 1 ] || bad "unstable ($quiet): MuJoCo's warning printed $w times"
    # The text is part of the one failure line only: never a warning line of
    # its own (with or without --quiet), never on stdout.
    w=$(cat out.txt err.txt | grep -i -e "WARNING" -e "huge value" | grep -c -v "^crl train: run 1 failed: ")
    [ "$w" = 0 ] || bad "unstable ($quiet): MuJoCo's text outside the failure line ($w lines)"
    ! grep -q -i -e "WARNING" -e "huge value" out.txt ||
        bad "unstable ($quiet): MuJoCo's text on stdout"
    [ ! -e MUJOCO_LOG.TXT ] || bad "unstable ($quiet): MUJOCO_LOG.TXT written"
    "$crl" runs --db d.db >runs.txt 2>&1
    grep -q "^1 .* failed " runs.txt || bad "unstable ($quiet): run status: $(cat runs.txt)"
done

rm -f d.db d.db-wal d.db-shm
# shellcheck disable=SC2086
if ! "$crl" train --env-xml stable.xml --db d.db --steps 300 $small --quiet \
    >out.txt 2>err.txt; then
    bad "stable: failed: $(cat err.txt)"
fi
"$crl" runs --db d.db >runs.txt 2>&1
grep -q "^1 .* finished " runs.txt || bad "stable: run status: $(cat runs.txt)"

[ "$fail" = 0 ] && echo "ok: a diverging model fails with one line; a stable one finishes"
exit $fail
