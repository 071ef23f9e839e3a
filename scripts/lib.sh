# Shared by the scripts in this folder: where things live, the pinned versions, messages.
# Source it; it defines variables and functions and runs nothing else.

QUIVER_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Downloads, Python environment, data and logs of the local stack. Relocatable.
QUIVER_STATE_DIR=${QUIVER_STATE_DIR:-$QUIVER_ROOT/.quiver}
QUIVER_VENV=$QUIVER_STATE_DIR/venv
QUIVER_AIRFLOW_VENV=$QUIVER_STATE_DIR/airflow-venv
export QUIVER_ROOT QUIVER_STATE_DIR QUIVER_VENV QUIVER_AIRFLOW_VENV
# The dev tooling, the package scripts/quiver_dev, run as `python -m quiver_dev.…`.
export PYTHONPATH=$QUIVER_ROOT/scripts${PYTHONPATH:+:$PYTHONPATH}

# shellcheck source=versions.env
set -a
. "$QUIVER_ROOT/scripts/versions.env"
set +a

if [ -t 2 ]; then _bold=$'\e[1m'; _red=$'\e[31m'; _green=$'\e[32m'; _off=$'\e[0m'; else _bold=; _red=; _green=; _off=; fi
say() { printf '%s==>%s %s\n' "$_bold" "$_off" "$*" >&2; }
ok() { printf '%s ok %s %s\n' "$_green" "$_off" "$*" >&2; }
die() { printf '%serror:%s %s\n' "$_red" "$_off" "$*" >&2; exit 1; }

# Rust build output is kept outside the clone so that fresh clones (CI) reuse it.
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/quiver/target}
# The workspace build compiles quiver-py too: as an extension module (what maturin builds)
# it leaves Python's symbols to the interpreter and needs no libpython to link against.
export PYO3_BUILD_EXTENSION_MODULE=1
