#!/usr/bin/env bash
# Install the comparison peers for bench/run.py into bench/.work (git-ignored). Idempotent:
# anything already installed is left alone. Peers that cannot be installed are reported and
# skipped; bench/run.py then skips their columns with a message.
#
#   mitmproxy  -> bench/.work/mitm-venv   (pip, its own venv; the project venv is not touched)
#   py-spy     -> bench/.work/mitm-venv   (profiler used by `run.py --profile`, optional)
#   WireMock   -> bench/.work/wiremock    (npm package `wiremock`, which bundles the standalone jar)
#   HAProxy    -> /usr/sbin/haproxy       (Debian package, installed with apt-get when run as root;
#                                          the ceiling column of bench/{redis,postgres,mysql}.py)
#
# Needs: python3 with venv, npm, java (17+) to run WireMock. wrk and nginx come from Debian:
#   apt-get install -y wrk nginx-light   (this script only checks for them)
set -uo pipefail
BENCH="$(cd "$(dirname "$0")/.." && pwd)"
WORK="$BENCH/.work"
mkdir -p "$WORK"
PY="${PYTHON:-python3}"
# mitmproxy 11.1+ needs Python 3.12; pick the newest release the interpreter can run.
if "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then
  MITM_VERSION="${MITM_VERSION:-12.3.1}"
else
  MITM_VERSION="${MITM_VERSION:-11.0.2}"
fi
WIREMOCK_VERSION="${WIREMOCK_VERSION:-3.13.2}"
status=0

say() { printf 'install.sh: %s\n' "$*"; }

# --- mitmproxy (+ py-spy) in its own venv -------------------------------------------------------
if [ -x "$WORK/mitm-venv/bin/mitmdump" ] && "$WORK/mitm-venv/bin/mitmdump" --version >/dev/null 2>&1; then
  say "mitmproxy: already installed ($("$WORK/mitm-venv/bin/mitmdump" --version 2>/dev/null | head -1))"
else
  say "mitmproxy: creating $WORK/mitm-venv"
  if "$PY" -m venv "$WORK/mitm-venv" \
    && "$WORK/mitm-venv/bin/pip" install -q --disable-pip-version-check "mitmproxy==$MITM_VERSION"; then
    say "mitmproxy: installed ($("$WORK/mitm-venv/bin/mitmdump" --version 2>/dev/null | head -1))"
  else
    say "mitmproxy: FAILED to install; its benchmarks will be skipped"
    status=1
  fi
fi
if [ -x "$WORK/mitm-venv/bin/pip" ] && [ ! -x "$WORK/mitm-venv/bin/py-spy" ]; then
  "$WORK/mitm-venv/bin/pip" install -q --disable-pip-version-check py-spy \
    && say "py-spy: installed" || say "py-spy: not installed (optional; --profile falls back to cProfile)"
fi

# --- WireMock (npm package bundling the jar) ----------------------------------------------------
jar() { find "$WORK/wiremock/node_modules/wiremock" -name 'wiremock-standalone*.jar' 2>/dev/null | head -1; }
if [ -n "$(jar)" ]; then
  say "WireMock: already installed ($(jar))"
elif ! command -v npm >/dev/null; then
  say "WireMock: npm not found; skipped"
  status=1
else
  mkdir -p "$WORK/wiremock"
  if (cd "$WORK/wiremock" && [ -f package.json ] || npm init -y >/dev/null 2>&1) \
    && (cd "$WORK/wiremock" && npm install --no-audit --no-fund --silent "wiremock@$WIREMOCK_VERSION") \
    && [ -n "$(jar)" ]; then
    say "WireMock: installed ($(jar))"
  else
    say "WireMock: FAILED to install (or no jar in the package); its benchmarks will be skipped"
    status=1
  fi
fi
command -v java >/dev/null || say "WireMock: java not found; WireMock benchmarks will be skipped"

# --- HAProxy (Debian package) ------------------------------------------------------------------
haproxy_bin() { command -v haproxy || { [ -x /usr/sbin/haproxy ] && echo /usr/sbin/haproxy; }; }
if [ -n "$(haproxy_bin)" ]; then
  say "HAProxy: already installed ($("$(haproxy_bin)" -v 2>/dev/null | head -1))"
elif [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
  say "HAProxy: installing the Debian package"
  if DEBIAN_FRONTEND=noninteractive apt-get install -y -q haproxy >/dev/null \
    && [ -n "$(haproxy_bin)" ]; then
    say "HAProxy: installed ($("$(haproxy_bin)" -v 2>/dev/null | head -1))"
  else
    say "HAProxy: FAILED to install (try apt-get update first); the haproxy columns will be skipped"
    status=1
  fi
else
  say "HAProxy: not found; install it as root (apt-get install -y haproxy). The haproxy columns are skipped"
  status=1
fi

# --- system tools (checked only) ----------------------------------------------------------------
for tool in wrk nginx; do
  command -v "$tool" >/dev/null || [ -x "/usr/sbin/$tool" ] \
    || { say "$tool: not found (apt-get install -y $tool); benchmarks that need it are skipped"; status=1; }
done
exit "$status"
