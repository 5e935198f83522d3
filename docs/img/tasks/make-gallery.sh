#!/bin/sh
# Render every task of `crl tasks` into docs/img/tasks/<task>.png, headless.
# usage: docs/img/tasks/make-gallery.sh [path/to/crl]
# Manipulation scenes get a closer three-quarter view than the models' own
# "front" camera (which frames the whole table); locomotion and control tasks
# use their models' camera.
set -eu
CRL=${1:-build/crl}
OUT=$(dirname "$0")
SIZE="--width 320 --height 240"
NEAR="--lookat 0.02,0.7,0.1 --distance 0.95 --azimuth 125 --elevation -38"
"$CRL" tasks | awk 'NR > 1 { print $1, $2 }' | while read -r task group; do
  case "$task:$group" in
  shelf-place:*) CAM="--lookat 0.02,0.7,0.2 --distance 1.15 --azimuth 125 --elevation -32" ;;
  stick-pull:*) CAM="--lookat 0.12,0.7,0.08 --distance 1.15 --azimuth 125 --elevation -38" ;;
  *:manipulation | *:pretrain) CAM=$NEAR ;;
  *) CAM="" ;;
  esac
  # shellcheck disable=SC2086
  "$CRL" render --task "$task" -o "$OUT/$task.png" $SIZE $CAM
done
