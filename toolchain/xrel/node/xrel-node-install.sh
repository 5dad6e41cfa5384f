# --- install -------------------------------------------------------------------------------------------

# The unpacked release this script belongs to: REL_DIR and its version VSN.
find_release() {
  REL_DIR=$(dirname "$(dirname "$SELF")")
  if [ ! -f "$REL_DIR/releases/start_erl.data" ] || [ ! -x "$REL_DIR/bin/$REL_NAME" ]; then
    die "$REL_DIR is not an unpacked release (no releases/start_erl.data or bin/$REL_NAME): run install as bin/xrel-node of one"
  fi
  read -r _erts VSN _rest <"$REL_DIR/releases/start_erl.data" || :
  [ -n "$VSN" ] || die "$REL_DIR/releases/start_erl.data names no version: unpack the release again"
  case $VSN in .* | */* | *[[:space:]]*) die "release version '$VSN' cannot be a directory name" ;; esac
}

# An existing ROOT is ours when it has state/node.state or holds nothing but our entries.
check_install_root() {
  case $ROOT in /*) ;; *) ROOT="$(pwd -P)/$ROOT" ;; esac
  case $ROOT in *[[:space:]]* | *'%'* | *'"'*) die "--root $ROOT: choose a path without spaces, quotes or %" ;; esac
  if [ -e "$ROOT" ] && [ ! -d "$ROOT" ]; then die "$ROOT exists and is not a directory: choose another --root"; fi
  [ -d "$ROOT" ] || return 0
  [ -f "$ROOT/state/node.state" ] && return 0
  for ci_path in "$ROOT"/* "$ROOT"/.[!.]* "$ROOT"/..?*; do
    [ -e "$ci_path" ] || [ -L "$ci_path" ] || continue
    case " $ROOT_ENTRIES " in *" $(basename "$ci_path") "*) ;;
      *) die "$ROOT holds $(basename "$ci_path"), so it is not an xrel node: choose another --root or empty it" ;;
    esac
  done
}

install_files() {
  mkdir -p "$ROOT/versions" "$ROOT/bin" "$STATE" || die "cannot create $ROOT: run install as root or choose another --root"
  chmod 0700 "$STATE"
  if [ -d "$ROOT/versions/$VSN" ]; then
    echo "versions/$VSN is already installed: kept"
  else
    rm -rf "$ROOT/versions/.$VSN.tmp"
    cp -a "$REL_DIR" "$ROOT/versions/.$VSN.tmp" || die "cannot copy $REL_DIR into $ROOT/versions: check the free space"
    mv "$ROOT/versions/.$VSN.tmp" "$ROOT/versions/$VSN" || die "cannot rename versions/.$VSN.tmp"
  fi
  if ! { cp "$SELF" "$ROOT/bin/.xrel-node.tmp" && chmod 0755 "$ROOT/bin/.xrel-node.tmp" &&
    mv -f "$ROOT/bin/.xrel-node.tmp" "$ROOT/bin/xrel-node"; }; then
    die "cannot write $ROOT/bin/xrel-node: run install as root or choose another --root"
  fi
  ensure_cookie
  if [ -f "$STATE_FILE" ]; then
    load_state
    echo "kept the node's state: current=$S_current phase=$S_phase"
  else
    S_current=$VSN S_dir=$VSN S_previous='' S_previous_dir='' S_phase=healthy S_probation_until=''
    S_attempts=0 S_failed='' S_reason='' S_rejected='' S_extra=''
    save_state
  fi
  [ -e "$ROOT/current" ] || [ -L "$ROOT/current" ] || flip "$S_dir"
}

write_unit() {
  wu_file="$UNIT_DIR/$APP.service"
  {
    printf '[Unit]\nDescription=%s (xrel release in %s)\n' "$APP" "$ROOT"
    printf 'Wants=network-online.target\nAfter=network-online.target\n'
    printf '# restart forever, however often it crashes: prestart decides about rollbacks\n'
    printf 'StartLimitIntervalSec=0\n\n[Service]\nType=simple\n'
    [ -n "$RUN_USER" ] && printf 'User=%s\n' "$RUN_USER"
    printf 'WorkingDirectory=%s\nEnvironment=XREL_NODE_ROOT=%s\nEnvironmentFile=-%s/node.env\n' "$ROOT" "$ROOT" "$ROOT"
    printf 'ExecStartPre=%s/bin/xrel-node prestart\nExecStart=%s/bin/xrel-node exec\n' "$ROOT" "$ROOT"
    printf 'ExecStopPost=-%s/bin/xrel-node poststop\n' "$ROOT"
    printf 'Restart=always\nRestartSec=%s\n' "$DEFAULT_RESTART_SEC"
    printf '# TERM to the VM (it stops its applications), KILL to what is left after the timeout\n'
    printf 'KillMode=mixed\nTimeoutStopSec=30\n\n[Install]\nWantedBy=multi-user.target\n'
  } >"$wu_file.tmp" || die "cannot write $wu_file: run install as root, or pass --unit-dir DIR or --no-systemd"
  mv -f "$wu_file.tmp" "$wu_file" || die "cannot rename $wu_file.tmp"
  printf 'wrote %s; now run:\n  systemctl daemon-reload\n  systemctl enable --now %s\n' "$wu_file" "$APP"
}

cmd_install() {
  ROOT="/opt/$APP" RUN_USER='' UNIT_DIR=/etc/systemd/system SYSTEMD=1
  [ -n "$ROOT_ARG" ] && ROOT=$ROOT_ARG
  while [ $# -gt 0 ]; do
    case $1 in
      --root) [ $# -ge 2 ] || die "--root needs a directory"; ROOT=$2; shift 2 ;;
      --user) [ $# -ge 2 ] || die "--user needs a user name"; RUN_USER=$2; shift 2 ;;
      --unit-dir) [ $# -ge 2 ] || die "--unit-dir needs a directory"; UNIT_DIR=$2; shift 2 ;;
      --no-systemd) SYSTEMD=''; shift ;;
      *) die "install: unknown option $1 (see bin/xrel-node help)" 2 ;;
    esac
  done
  find_release
  check_install_root
  if [ -n "$SYSTEMD" ] && { [ ! -d "$UNIT_DIR" ] || [ ! -w "$UNIT_DIR" ]; }; then
    die "cannot write units into $UNIT_DIR: run install as root, or pass --unit-dir DIR, or --no-systemd and use bin/xrel-node run"
  fi
  if [ -n "$RUN_USER" ]; then id -u "$RUN_USER" >/dev/null 2>&1 || die "no user $RUN_USER: create it (useradd --system $RUN_USER) or leave out --user"; fi
  STATE="$ROOT/state" STATE_FILE="$ROOT/state/node.state"
  install_files
  if [ -n "$RUN_USER" ]; then chown -R "$RUN_USER" "$ROOT" || die "cannot chown $ROOT to $RUN_USER: run install as root"; fi
  log installed version="$VSN" root="$ROOT"
  if [ -n "$SYSTEMD" ]; then write_unit; else printf 'installed; start it with:\n  %s/bin/xrel-node run\n' "$ROOT"; fi
}
