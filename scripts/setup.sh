#!/usr/bin/env bash
# One-time set-up on a Debian machine: host packages (only the missing ones), then .venv.
# Idempotent: a second run installs nothing and takes about a second.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages kmodlab runs, one list for this script and `kmodlab doctor`.
mapfile -t PACKAGES < <(grep -v -e '^#' -e '^$' harness/kmodlab/host-packages.txt)

missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  echo "setup: installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if [ ! -x .venv/bin/kmodlab ] || [ pyproject.toml -nt .venv/.kmodlab-installed ]; then
  echo "setup: creating .venv with kmodlab"
  python3 -m venv .venv
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e '.[dev]'
  touch .venv/.kmodlab-installed
fi
