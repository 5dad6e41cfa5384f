#!/bin/sh
# xrel-node: runs an xrel release on a production node with nothing but POSIX sh and coreutils.
# Lays out ROOT (versions side by side, a `current` symlink, state/), writes a systemd unit, decides
# rollbacks before every start, and supervises the release where there is no systemd.
# The contract it shares with the release's agent is NODE.md (in xrel: toolchain/xrel/node/NODE.md).
# xrel fills in the defaults below when it builds the release.
REL_NAME='@REL_NAME@'
APP='@APP@'
DEFAULT_PROBATION='@PROBATION@'
DEFAULT_MAX_ATTEMPTS='@MAX_ATTEMPTS@'
DEFAULT_RESTART_SEC='@RESTART_SEC@'

set -u
umask 022
ROOT_ENTRIES='versions bin state current node.env .current.tmp'

die() { printf 'xrel-node: %s\n' "$1" >&2; exit "${2:-1}"; }
now() { date +%s; }

# --- where things are -------------------------------------------------------------------------------

self_path() {
  SELF=$(readlink -f "$0" 2>/dev/null) || SELF=$0
  case $SELF in /*) ;; *) SELF="$(pwd -P)/$SELF" ;; esac
}

# ROOT from --root, XREL_NODE_ROOT, or the script's own place (ROOT/bin/ or ROOT/versions/<dir>/bin/).
find_root() {
  if [ -n "$ROOT_ARG" ]; then ROOT=$ROOT_ARG
  elif [ -n "${XREL_NODE_ROOT:-}" ]; then ROOT=$XREL_NODE_ROOT
  else
    fr_up=$(dirname "$(dirname "$SELF")")
    if [ -f "$fr_up/state/node.state" ]; then ROOT=$fr_up
    elif [ "$(basename "$(dirname "$fr_up")")" = versions ]; then ROOT=$(dirname "$(dirname "$fr_up")")
    else die "no node root: pass --root DIR or set XREL_NODE_ROOT (bin/xrel-node install makes one)"
    fi
  fi
  ROOT=$(cd "$ROOT" 2>/dev/null && pwd -P) || die "no directory $ROOT: run bin/xrel-node install --root DIR first"
  STATE="$ROOT/state"
  STATE_FILE="$STATE/node.state"
}

require_node() {
  [ -f "$STATE_FILE" ] || die "$ROOT is not an xrel node (no state/node.state): run bin/xrel-node install from an unpacked release"
  [ -d "$ROOT/versions" ] || die "$ROOT has no versions/ directory: re-run bin/xrel-node install from an unpacked release"
  [ -w "$STATE" ] || die "cannot write $STATE: run as the service's user or root"
}

load_env() {
  if [ -f "$ROOT/node.env" ]; then
    set -a
    # shellcheck disable=SC1091
    . "$ROOT/node.env"
    set +a
  fi
  MAX_ATTEMPTS=${XREL_NODE_MAX_ATTEMPTS:-$DEFAULT_MAX_ATTEMPTS}
  PROBATION=${XREL_NODE_PROBATION:-$DEFAULT_PROBATION}
  RESTART_SEC=${XREL_NODE_RESTART_SEC:-$DEFAULT_RESTART_SEC}
  is_number "$MAX_ATTEMPTS" || die "XREL_NODE_MAX_ATTEMPTS=$MAX_ATTEMPTS is not a number: fix $ROOT/node.env"
  is_number "$RESTART_SEC" || die "XREL_NODE_RESTART_SEC=$RESTART_SEC is not a number: fix $ROOT/node.env"
}

is_number() { case $1 in '' | *[!0-9]*) return 1 ;; *) return 0 ;; esac; }

# A versions/ entry name: no slash, not hidden (hidden ones are partial unpacks).
check_dir_name() {
  case $1 in '' | .* | */*) die "$2 '$1' is not a usable directory name under versions/: fix $STATE_FILE" ;; esac
}

# --- state file and log -------------------------------------------------------------------------------

# Reads node.state into S_<key>; lines with other keys are kept verbatim in S_extra.
load_state() {
  S_current='' S_dir='' S_previous='' S_previous_dir='' S_phase='' S_probation_until=''
  S_attempts='' S_failed='' S_reason='' S_rejected='' S_updated='' S_extra=''
  while IFS= read -r ls_line || [ -n "$ls_line" ]; do
    ls_value=${ls_line#*=}
    case $ls_line in
      current=*) S_current=$ls_value ;;
      dir=*) S_dir=$ls_value ;;
      previous=*) S_previous=$ls_value ;;
      previous_dir=*) S_previous_dir=$ls_value ;;
      phase=*) S_phase=$ls_value ;;
      probation_until=*) S_probation_until=$ls_value ;;
      attempts=*) S_attempts=$ls_value ;;
      failed=*) S_failed=$ls_value ;;
      reason=*) S_reason=$ls_value ;;
      rejected=*) S_rejected=$ls_value ;;
      updated=*) S_updated=$ls_value ;;
      '') ;;
      *) S_extra="$S_extra$ls_line
" ;;
    esac
  done <"$STATE_FILE"
  [ -n "$S_dir" ] || S_dir=$S_current
}

# Writes S_<key> (and the kept lines) to node.state.tmp, then renames it over node.state.
save_state() {
  S_updated=$(now)
  {
    printf 'current=%s\ndir=%s\nprevious=%s\nprevious_dir=%s\n' "$S_current" "$S_dir" "$S_previous" "$S_previous_dir"
    printf 'phase=%s\nprobation_until=%s\nattempts=%s\n' "$S_phase" "$S_probation_until" "$S_attempts"
    printf 'failed=%s\nreason=%s\nrejected=%s\nupdated=%s\n' "$S_failed" "$S_reason" "$S_rejected" "$S_updated"
    printf '%s' "$S_extra"
  } >"$STATE_FILE.tmp" || die "cannot write $STATE_FILE.tmp: check the disk and the owner of $STATE"
  sync "$STATE_FILE.tmp" 2>/dev/null || :
  mv -f "$STATE_FILE.tmp" "$STATE_FILE" || die "cannot replace $STATE_FILE: check the owner of $STATE"
}

# log EVENT [KEY=VALUE]...: one line in node.log (values with spaces quoted), echoed to stderr.
log() {
  lg_line="$(date -u +%Y-%m-%dT%H:%M:%SZ) $1"
  shift
  for lg_pair in "$@"; do
    lg_value=${lg_pair#*=}
    case $lg_value in
      *' '* | *'"'*) lg_line="$lg_line ${lg_pair%%=*}=\"$(printf '%s' "$lg_value" | tr '"' "'")\"" ;;
      *) lg_line="$lg_line $lg_pair" ;;
    esac
  done
  printf '%s\n' "$lg_line" >>"$STATE/node.log" 2>/dev/null || :
  printf 'xrel-node: %s\n' "$lg_line" >&2
}

# --- the current symlink and the cookie -----------------------------------------------------------------

# Points ROOT/current at versions/$1 atomically: a new symlink renamed over the old one.
flip() {
  rm -f "$ROOT/.current.tmp"
  ln -s "versions/$1" "$ROOT/.current.tmp" || die "cannot create $ROOT/.current.tmp: check the owner of $ROOT"
  if ! mv -T "$ROOT/.current.tmp" "$ROOT/current" 2>/dev/null; then
    # an mv without -T would move the link INTO the old target directory; the gap this leaves
    # (no `current` for an instant) is repaired by the next prestart
    rm -f "$ROOT/current"
    mv "$ROOT/.current.tmp" "$ROOT/current" || die "cannot rename $ROOT/.current.tmp to $ROOT/current"
  fi
}

current_target() { readlink "$ROOT/current" 2>/dev/null || :; }

points_at() {
  pa_target=$(current_target)
  [ "$pa_target" = "versions/$1" ] || [ "$pa_target" = "$ROOT/versions/$1" ]
}

ensure_cookie() {
  [ -s "$STATE/cookie" ] && return 0
  rm -f "$STATE/cookie.tmp"
  (umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$STATE/cookie.tmp") ||
    die "cannot make $STATE/cookie: check /dev/urandom and the owner of $STATE"
  chmod 0400 "$STATE/cookie.tmp"
  mv -f "$STATE/cookie.tmp" "$STATE/cookie" || die "cannot rename $STATE/cookie.tmp"
  log cookie_created
}

runnable() { [ -x "$ROOT/versions/$1/bin/$REL_NAME" ]; }

# --- prestart: clean up, reconcile, decide about probation ---------------------------------------------

remove_partial_unpacks() {
  for rp_path in "$ROOT"/versions/.[!.]* "$ROOT"/versions/..?*; do
    [ -e "$rp_path" ] || [ -L "$rp_path" ] || continue
    rm -rf "$rp_path" || die "cannot delete $rp_path: check the owner of $ROOT/versions"
    log partial_removed path="versions/$(basename "$rp_path")"
  done
}

cmd_prestart() {
  require_node
  remove_partial_unpacks
  load_state
  check_dir_name "$S_dir" dir
  if ! points_at "$S_dir"; then
    log reconcile from="$(current_target)" to="versions/$S_dir"
    flip "$S_dir"
  fi
  ensure_cookie
  if [ "$S_phase" = probation ]; then
    probation_step
  fi
  runnable "$S_dir" || die "$ROOT/versions/$S_dir/bin/$REL_NAME is missing: unpack that release there, or fix dir= in $STATE_FILE"
}

# One more start during probation: roll back when the new version failed, crashed too often or ran
# out of time.
probation_step() {
  is_number "$S_attempts" || S_attempts=0
  S_attempts=$((S_attempts + 1))
  ps_why=''
  if [ -n "$S_failed" ]; then
    ps_why="failed its health check: $S_failed"
  elif ! runnable "$S_dir"; then
    ps_why="is not unpacked (versions/$S_dir/bin/$REL_NAME is missing)"
  elif [ "$S_attempts" -gt "$MAX_ATTEMPTS" ]; then
    ps_why="crashed $((S_attempts - 1)) times during probation"
  elif [ -n "$S_probation_until" ] && { ! is_number "$S_probation_until" || [ "$(now)" -gt "$S_probation_until" ]; }; then
    ps_why="did not become healthy within $PROBATION s"
  fi
  if [ -z "$ps_why" ]; then
    save_state
    log probation version="$S_current" attempt="$S_attempts" of="$MAX_ATTEMPTS"
  else
    roll_back "$ps_why"
  fi
}

roll_back() {
  [ -z "$S_previous_dir" ] || check_dir_name "$S_previous_dir" previous_dir
  if [ -z "$S_previous_dir" ] || ! runnable "$S_previous_dir"; then
    save_state
    log rollback_impossible version="$S_current" reason="$S_current $1" previous="$S_previous_dir"
    return 0
  fi
  rb_from=$S_current
  S_current=${S_previous:-$S_previous_dir} S_dir=$S_previous_dir S_previous='' S_previous_dir=''
  S_phase=rolled_back S_reason="$rb_from $1" S_failed='' S_attempts=0 S_probation_until='' S_rejected=$rb_from
  save_state
  flip "$S_dir"
  log rollback from="$rb_from" to="$S_current" reason="$S_reason"
}

# --- running -------------------------------------------------------------------------------------------

export_cookie() {
  [ -r "$STATE/cookie" ] || die "no readable $STATE/cookie: run bin/xrel-node prestart (or install) first"
  RELEASE_COOKIE=$(cat "$STATE/cookie")
  export RELEASE_COOKIE XREL_NODE_ROOT="$ROOT"
}

release_bin() {
  [ -x "$ROOT/current/bin/$REL_NAME" ] ||
    die "$ROOT/current/bin/$REL_NAME is missing: run bin/xrel-node prestart to repair the current symlink"
  printf '%s' "$ROOT/current/bin/$REL_NAME"
}

cmd_exec() {
  require_node
  export_cookie
  ex_bin=$(release_bin) || exit 1
  load_state
  log start version="$S_current" dir="$(basename "$(current_target)")" pid="$$"
  cd "$ROOT" || die "cannot enter $ROOT"
  if [ "$S_phase" = probation ] && is_number "$S_probation_until"; then
    (watch_probation "$$" "$S_current" "$S_probation_until" </dev/null &)
  fi
  exec "$ex_bin" start
}

# Beside a version on probation (detached, so the VM that replaces this shell never reaps it): when
# probation_until passes and the state still says probation for it, TERM the VM; the prestart before
# the next start rolls back. This covers a version that boots but never reaches its agent.
watch_probation() {
  wp_pid=$1 wp_vsn=$2 wp_until=$3
  while kill -0 "$wp_pid" 2>/dev/null; do
    if [ "$(now)" -gt "$wp_until" ]; then
      load_state
      [ "$S_phase" = probation ] && [ "$S_current" = "$wp_vsn" ] || return 0
      if is_number "$S_probation_until" && [ "$S_probation_until" -gt "$wp_until" ]; then
        wp_until=$S_probation_until
        continue
      fi
      log probation_expired version="$wp_vsn" pid="$wp_pid"
      kill -TERM "$wp_pid" 2>/dev/null
      return 0
    fi
    sleep 1
  done
}

cmd_poststop() {
  require_node
  log exit status="${EXIT_STATUS:-}" code="${EXIT_CODE:-}" result="${SERVICE_RESULT:-}"
}

# The supervisor without systemd: prestart, start, wait, log, pause, again; TERM/INT stop it.
cmd_run() {
  require_node
  RUN_CHILD='' RUN_STOP='' RUN_WATCHDOG=''
  trap 'stop_child' TERM INT
  while :; do
    if ! "$SELF" --root "$ROOT" prestart; then
      log prestart_failed retry_in="$RESTART_SEC"
    else
      [ -n "$RUN_STOP" ] && break
      "$SELF" --root "$ROOT" exec &
      RUN_CHILD=$!
      wait_child
      log exit status="$RUN_STATUS"
      RUN_CHILD=''
      [ -n "$RUN_WATCHDOG" ] && kill "$RUN_WATCHDOG" 2>/dev/null
    fi
    [ -n "$RUN_STOP" ] && break
    sleep "$RESTART_SEC" &
    RUN_SLEEP=$!
    wait "$RUN_SLEEP" 2>/dev/null
    kill "$RUN_SLEEP" 2>/dev/null
    [ -n "$RUN_STOP" ] && break
  done
  log stopped
  exit 0
}

# wait returns early (status > 128) when a trapped signal arrives: wait again until the child is gone.
wait_child() {
  while :; do
    wait "$RUN_CHILD" 2>/dev/null
    RUN_STATUS=$?
    kill -0 "$RUN_CHILD" 2>/dev/null || return 0
  done
}

# The child is asked to stop with TERM (a background child of sh ignores INT, and INT is the BEAM's
# break handler); after XREL_NODE_STOP_TIMEOUT seconds (default 30) it is killed.
stop_child() {
  RUN_STOP=1
  [ -n "$RUN_CHILD" ] || return 0
  kill -TERM "$RUN_CHILD" 2>/dev/null || return 0
  sc_child=$RUN_CHILD
  (
    trap 'kill "$sc_sleep" 2>/dev/null; exit 0' TERM
    sleep "${XREL_NODE_STOP_TIMEOUT:-30}" &
    sc_sleep=$!
    wait "$sc_sleep" && kill -KILL "$sc_child" 2>/dev/null
  ) >/dev/null 2>&1 &
  RUN_WATCHDOG=$!
}

# --- small commands ------------------------------------------------------------------------------------

cmd_status() {
  require_node
  cat "$STATE_FILE"
  printf 'current -> %s\n' "$(current_target)"
  printf 'versions:'
  for st_path in "$ROOT"/versions/*; do [ -d "$st_path" ] && printf ' %s' "$(basename "$st_path")"; done
  printf '\n'
}

cmd_check_now() {
  require_node
  touch "$STATE/check-now" || die "cannot touch $STATE/check-now: run as the service's user or root"
}

cmd_release() {
  require_node
  export_cookie
  rl_bin=$(release_bin) || exit 1
  exec "$rl_bin" "$@"
}

usage() {
  cat <<EOF
usage: xrel-node [--root DIR] COMMAND [ARGS]
  install [--root DIR] [--user USER] [--unit-dir DIR] [--no-systemd]
              lay out DIR (default /opt/$APP) from this unpacked release; write $APP.service
  prestart    before every start: remove partial unpacks, repair current, roll back a failed version
  exec        run the current version in the foreground (systemd's ExecStart)
  run         supervise it without systemd: restart on exit, TERM/INT stop it
  status      print the state file and the current symlink
  check-now   ask the agent to check the feed now
  rpc EXPR    evaluate EXPR in the running node;  remote: a remote shell into it
The node root comes from --root, XREL_NODE_ROOT, or where this script lives. Contract: NODE.md.
EOF
}

# @INSTALL@ (xrel-node-install.sh: the install command)

# --- main ----------------------------------------------------------------------------------------------

ROOT_ARG=''
while [ $# -gt 0 ]; do
  case $1 in
    --root) [ $# -ge 2 ] || die "--root needs a directory"; ROOT_ARG=$2; shift 2 ;;
    *) break ;;
  esac
done
COMMAND=${1:-help}
[ $# -gt 0 ] && shift
self_path
case $COMMAND in
  help | -h | --help) usage; exit 0 ;;
  install) cmd_install "$@"; exit 0 ;;
esac
find_root
load_env
case $COMMAND in
  prestart) cmd_prestart ;;
  exec) cmd_exec ;;
  run) cmd_run ;;
  poststop) cmd_poststop ;;
  status) cmd_status ;;
  check-now) cmd_check_now ;;
  rpc) [ $# -ge 1 ] || die "rpc needs an expression: bin/xrel-node rpc 'IO.puts(:ok)'" 2; cmd_release rpc "$@" ;;
  remote) cmd_release remote ;;
  *) die "unknown command $COMMAND (see bin/xrel-node help)" 2 ;;
esac
