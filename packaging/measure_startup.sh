#!/usr/bin/env bash
# Time from launching the app to its main window being mapped on an X server (Xvfb),
# with a fresh home (no settings, no model), RUNS times.
#
#   bash packaging/measure_startup.sh [dist/Starpad/starpad] [RUNS]
set -euo pipefail
APP="$(realpath "${1:-dist/Starpad/starpad}")"
RUNS="${2:-3}"
if [ -z "${DISPLAY:-}" ]; then
  exec xvfb-run -a -s "-screen 0 1400x900x24" bash "$0" "$APP" "$RUNS"
fi
for run in $(seq "$RUNS"); do
  home="$(mktemp -d)"
  start=$(date +%s.%N)
  HOME="$home" XDG_CONFIG_HOME="$home/.config" "$APP" >/dev/null 2>&1 &
  pid=$!
  # The main window's title ends in "— Starpad"; it counts once X reports it viewable.
  until id=$(xwininfo -root -tree 2>/dev/null | grep -o '0x[0-9a-f]* "[^"]*— Starpad"' | head -1 | cut -d' ' -f1) \
        && [ -n "$id" ] && xwininfo -id "$id" 2>/dev/null | grep -q IsViewable; do
    sleep 0.02
    if [ "$(echo "$(date +%s.%N) - $start > 20" | bc)" = 1 ]; then echo "run $run: no window after 20 s"; break; fi
  done
  echo "run $run: window mapped after $(echo "$(date +%s.%N) - $start" | bc | cut -c1-5) s"
  kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true
  rm -rf "$home"
done
