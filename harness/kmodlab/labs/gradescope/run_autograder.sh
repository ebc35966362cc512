#!/usr/bin/env bash
# kmodlab's Gradescope grader (autograder.zip's run_autograder), written by `kmodlab lab
# gradescope`.  Gradescope copies it to /autograder/run_autograder and runs it for each
# submission: it grades /autograder/submission into /autograder/results/results.json.
#
# KMODLAB_AUTOGRADER_ROOT replaces /autograder (a simulated root for tests and local runs);
# KMODLAB_VENV and KMODLAB_CACHE replace the venv and the cache setup.sh made.
set -uo pipefail

ROOT="${KMODLAB_AUTOGRADER_ROOT:-/autograder}"
SOURCE="$ROOT/source"
if [ ! -f "$SOURCE/kmodlab/autograder.env" ]; then
  echo "kmodlab: $SOURCE/kmodlab/autograder.env is missing: this is not kmodlab's autograder" \
       "image.  Not the student's fault: upload the autograder zip again, then rerun the" \
       "autograder on this submission." >&2
  exit 3
fi
# shellcheck source=kmodlab/autograder.env
. "$SOURCE/kmodlab/autograder.env"
VENV="${KMODLAB_VENV:-$KMODLAB_GS_VENV}"
export KMODLAB_CACHE="${KMODLAB_CACHE:-$KMODLAB_GS_CACHE}"
export KMODLAB_AUTOGRADER_ROOT="$ROOT"
export PYTHONUNBUFFERED=1
if [ ! -x "$VENV/bin/python" ]; then
  echo "kmodlab: $VENV/bin/python is missing: the image's setup.sh did not finish.  Not the" \
       "student's fault: fix the image build, then rerun the autograder on this submission." >&2
  exit 3
fi
cd "$ROOT" || exit 3
exec "$VENV/bin/python" -m kmodlab.labs.gradescope_run run --root "$ROOT"
