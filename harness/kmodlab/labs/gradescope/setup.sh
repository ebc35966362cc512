#!/usr/bin/env bash
# kmodlab's Gradescope image set-up, written into autograder.zip by `kmodlab lab gradescope`.
#
# Gradescope runs it once, as root, when it builds the autograder image, from the unpacked zip
# (/autograder/source).  It installs the host packages kmodlab needs, a venv with the exact
# kmodlab wheel shipped in the zip, then provisions the lab's kernels and boots each grading
# guest once (kmodlab.labs.gradescope_run warm) so that grading a submission downloads nothing.
# Any failure fails the image build, where the instructor sees it, instead of every submission.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [ -f "$HERE/kmodlab/autograder.env" ]; then
  SOURCE="$HERE"
else
  SOURCE="${KMODLAB_AUTOGRADER_ROOT:-/autograder}/source"
fi
# shellcheck source=kmodlab/autograder.env
. "$SOURCE/kmodlab/autograder.env"
VENV="${KMODLAB_VENV:-$KMODLAB_GS_VENV}"
export KMODLAB_CACHE="${KMODLAB_CACHE:-$KMODLAB_GS_CACHE}"
export DEBIAN_FRONTEND=noninteractive
export PYTHONUNBUFFERED=1

log() { echo "kmodlab setup: $*"; }
apt_install() { apt-get install -y -q --no-install-recommends "$@"; }

# 1. Host packages.  The list is Debian's (harness/kmodlab/host-packages.txt of this kmodlab);
# Gradescope's image is Ubuntu, where a few names differ: a known rename is tried, and a package
# Ubuntu does not have at all stops the build with its name.
declare -A ALTERNATE=([libelf1]=libelf1t64)
available() {
  local policy
  policy="$(apt-cache policy "$1" 2>/dev/null)" || return 1
  [[ "$policy" == *"Candidate: "* && "$policy" != *"Candidate: (none)"* ]]
}
mapfile -t PACKAGES < <(grep -v -e '^[[:space:]]*#' -e '^[[:space:]]*$' "$SOURCE/kmodlab/host-packages.txt")
if [ -n "${KMODLAB_AUTOGRADER_SKIP_APT:-}" ]; then
  # a machine that has them (kmodlab's own tests, a local trial): no apt, no root needed
  PACKAGES=()
else
  log "apt-get update"
  apt-get update -q
fi
install=()
missing=()
for pkg in "${PACKAGES[@]}"; do
  if available "$pkg"; then
    install+=("$pkg")
  elif [ -n "${ALTERNATE[$pkg]:-}" ] && available "${ALTERNATE[$pkg]}"; then
    log "$pkg is called ${ALTERNATE[$pkg]} here"
    install+=("${ALTERNATE[$pkg]}")
  else
    missing+=("$pkg")
  fi
done
if ((${#missing[@]})); then
  log "this image's package lists have no: ${missing[*]}" >&2
  log "kmodlab needs them (see kmodlab/host-packages.txt in the zip); choose Gradescope's" \
      "Ubuntu 22.04 (or newer) base image" >&2
  exit 1
fi
if ((${#install[@]})); then
  log "installing ${#install[@]} packages"
  apt_install "${install[@]}"
fi

# 2. A Python that kmodlab supports (3.11 or newer; Ubuntu 22.04's python3 is 3.10).
PY=""
for candidate in python3 python3.13 python3.12 python3.11; do
  if command -v "$candidate" >/dev/null 2>&1 &&
     "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    PY="$(command -v "$candidate")"
    break
  fi
done
if [ -z "$PY" ]; then
  log "no Python 3.11 or newer: installing python3.11"
  apt_install python3.11 python3.11-venv
  PY="$(command -v python3.11)"
fi
if ! "$PY" -c 'import ensurepip' 2>/dev/null; then
  apt_install "python$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')-venv"
fi
log "Python: $PY ($("$PY" --version))"

# 3. The venv, with exactly the kmodlab wheel in the zip; its dependencies at the versions the
# zip was built with (constraints.txt).
WHEEL="$SOURCE/kmodlab/$KMODLAB_GS_WHEEL"
echo "$KMODLAB_GS_WHEEL_SHA256  $WHEEL" | sha256sum -c --quiet -
rm -rf "$VENV"
"$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade -c "$SOURCE/kmodlab/constraints.txt" pip
# shellcheck disable=SC2086  # KMODLAB_GS_EXTRA is a list of requirement names
"$VENV/bin/python" -m pip install -q -c "$SOURCE/kmodlab/constraints.txt" "$WHEEL" $KMODLAB_GS_EXTRA
installed="$("$VENV/bin/python" -c 'import kmodlab; print(kmodlab.__version__)')"
if [ "$installed" != "$KMODLAB_GS_VERSION" ]; then
  log "the venv has kmodlab $installed, the zip was built with $KMODLAB_GS_VERSION" >&2
  exit 1
fi
log "kmodlab $installed in $VENV"

# 4. Kernels and a warm guest per grading target, in the cache grading reads ($KMODLAB_CACHE).
mkdir -p "$KMODLAB_CACHE"
"$VENV/bin/python" -m kmodlab.labs.gradescope_run warm --source "$SOURCE"
log "done"
