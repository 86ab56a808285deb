#!/usr/bin/env bash
# Turns a fresh clone into a working ROS 2 development setup in .venv (or $LIGHTLIP_VENV):
# system tools, pinned Python requirements (ROS 2 Kilted wheels included), lightlip_msgs built with
# CMake into the venv, and lightlip_ros installed with its share/ files and console scripts.
# Each step is skipped when its inputs are unchanged (stamps hold their hashes), so a second run
# takes seconds.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${LIGHTLIP_VENV:-$ROOT/.venv}"
STAMPS="$VENV/.lightlip-stamps"
BUILD="$ROOT/build"
PYTHON_FOR_VENV="${PYTHON:-python3}"

say() { printf 'bootstrap: %s\n' "$*"; }
die() { printf 'bootstrap: error: %s\n' "$*" >&2; exit 1; }

# Hash of files (sorted, Python caches excluded) so that unchanged inputs skip their step.
hash_inputs() {
  (cd "$ROOT" && find "$@" -type f ! -name '*.pyc' ! -path '*/__pycache__/*' -print0 2>/dev/null \
    | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -c1-64)
}
stamp_matches() { [ -f "$STAMPS/$1" ] && [ "$(cat "$STAMPS/$1")" = "$2" ]; }
write_stamp() { mkdir -p "$STAMPS"; printf '%s' "$2" >"$STAMPS/$1"; }

# --- 1. System tools -----------------------------------------------------------------------------
# command -> Debian package that provides it
declare -A SYSTEM_TOOLS=(
  [cmake]=cmake [g++]=g++ [make]=make [ffmpeg]=ffmpeg [espeak-ng]=espeak-ng [sox]=sox
  # The web display's browser test drives the system browser (no browser downloads).
  [chromium]=chromium [chromedriver]=chromium-driver
)
# Festival's voices are folders, not commands: voice folder -> Debian package (the synthetic benchmark's
# second speech engine, training/data/synth/speech.py).
declare -A FESTIVAL_VOICES=(
  [english/kal_diphone]=festvox-kallpc16k [english/ked_diphone]=festvox-kdlpc16k
  [us/cmu_us_slt_arctic_hts]=festvox-us-slt-hts
)
missing_packages=()
for tool in "${!SYSTEM_TOOLS[@]}"; do
  command -v "$tool" >/dev/null 2>&1 || missing_packages+=("${SYSTEM_TOOLS[$tool]}")
done
command -v festival >/dev/null 2>&1 || missing_packages+=(festival)
for voice in "${!FESTIVAL_VOICES[@]}"; do
  [ -d "/usr/share/festival/voices/$voice" ] || missing_packages+=("${FESTIVAL_VOICES[$voice]}")
done
if [ "${#missing_packages[@]}" -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing system packages: ${missing_packages[*]}"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing_packages[@]}"; } \
      >"$ROOT/build-apt.log" 2>&1 \
      || die "could not install ${missing_packages[*]} with apt-get (log: build-apt.log); install them and rerun"
  else
    die "missing system tools (${missing_packages[*]}): install them (e.g. sudo apt-get install ${missing_packages[*]}) and rerun"
  fi
fi
"$PYTHON_FOR_VENV" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
  || die "$PYTHON_FOR_VENV is missing or older than 3.11 (the pinned numpy/scipy/onnxruntime need it); set PYTHON=/path/to/python3.11+"

# --- 2. Virtual environment and pinned requirements ----------------------------------------------
if [ ! -x "$VENV/bin/python" ]; then
  say "creating $VENV"
  "$PYTHON_FOR_VENV" -m venv "$VENV" || die "could not create a venv with $PYTHON_FOR_VENV -m venv"
fi
PY="$VENV/bin/python"
requirements_hash="$(hash_inputs requirements.txt constraints.txt)"
if ! stamp_matches requirements "$requirements_hash"; then
  say "installing pinned requirements (a few minutes the first time)"
  start=$SECONDS
  "$PY" -m pip install -q --disable-pip-version-check -r "$ROOT/requirements.txt" 2>&1 \
    | grep -v "^WARNING: Location" || true
  "$PY" -c "import rclpy, torch, onnxruntime, librosa, cv2" \
    || die "pip did not install the requirements (see above)"
  # The ROS wheels' exported CMake files name the include dirs of the machine they were built on:
  # point them at this venv's Python and numpy headers, or CMake refuses them.
  python_include="$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
  numpy_include="$("$PY" -c 'import numpy; print(numpy.get_include())')"
  # (grep finds nothing once they are patched: that is not an error.)
  { grep -rlZ --include='*.cmake' '/opt/python/cp3' "$VENV/share" 2>/dev/null || true; } | xargs -0 -r sed -i -E \
    -e "s#/opt/python/cp3[0-9]+-cp3[0-9]+/lib/python3\.[0-9]+/site-packages/numpy/_core/include#${numpy_include}#g" \
    -e "s#/opt/python/cp3[0-9]+-cp3[0-9]+/include/python3\.[0-9]+#${python_include}#g"
  write_stamp requirements "$requirements_hash"
  rm -f "$STAMPS/lightlip_msgs" "$STAMPS/audio_common_msgs" "$STAMPS/lightlip_ros"
  say "requirements installed in $((SECONDS - start)) s"
fi

# --- 3. Interface packages: plain CMake builds into the venv prefix --------------------------------
# build_interfaces NAME SOURCE_DIR IMPORT_CHECK
build_interfaces() {
  local name="$1" source="$2" check="$3" hash start log
  hash="$(hash_inputs "${source#"$ROOT"/}")"
  stamp_matches "$name" "$hash" && return 0
  say "building $name (about a minute)"
  start=$SECONDS
  rm -rf "$BUILD/$name"
  log="$BUILD/$name.log"
  mkdir -p "$BUILD"
  {
    PATH="$VENV/bin:$PATH" cmake -S "$source" -B "$BUILD/$name" \
      -DCMAKE_INSTALL_PREFIX="$VENV" -DCMAKE_PREFIX_PATH="$VENV" -DPython3_EXECUTABLE="$PY" \
      -DBUILD_TESTING=OFF -DCMAKE_BUILD_TYPE=Release \
    && PATH="$VENV/bin:$PATH" cmake --build "$BUILD/$name" -j "$(nproc)" \
    && cmake --install "$BUILD/$name"
  } >"$log" 2>&1 || die "$name did not build; last lines of $log: $(tail -n 3 "$log" | tr '\n' ' ')"
  "$PY" -c "$check" || die "$name built but does not import from $PY"
  write_stamp "$name" "$hash"
  say "$name built in $((SECONDS - start)) s"
}
build_interfaces lightlip_msgs "$ROOT/lightlip_msgs" \
  "from lightlip_msgs.msg import AudioChunk, TalkStatus; from lightlip_msgs.srv import SetFace"
# Tests only: ros-drivers' audio_common_msgs is not on PyPI (see test/interfaces/README.md). A venv
# that has the real package keeps it.
if ! "$PY" -c "import audio_common_msgs" 2>/dev/null || [ -f "$STAMPS/audio_common_msgs" ]; then
  build_interfaces audio_common_msgs "$ROOT/test/interfaces/audio_common_msgs" \
    "from audio_common_msgs.msg import AudioData, AudioDataStamped, AudioInfo"
fi

# --- 4. lightlip_ros: installed (not editable) so that share/ files and console scripts exist ----
package_hash="$(hash_inputs setup.py setup.cfg package.xml resource lightlip_ros training launch config)"
if ! stamp_matches lightlip_ros "$package_hash"; then
  say "installing lightlip_ros"
  "$PY" -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation "$ROOT" 2>&1 \
    | grep -v "^WARNING: Location" || true
  "$PY" -c "import lightlip_ros" || die "lightlip_ros did not install (see above)"
  rm -rf "$ROOT/build/lib" "$ROOT/build/bdist."* "$ROOT"/*.egg-info
  write_stamp lightlip_ros "$package_hash"
fi
say "ready: $VENV"
