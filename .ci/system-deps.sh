#!/usr/bin/env bash
# Installs the system packages Ember's tests and demo need (Debian, Ubuntu, Raspberry Pi OS).
# Usage: .ci/system-deps.sh [test|demo]
# Uses apt-get as root (or through passwordless sudo); otherwise prints the command to run and fails.
set -euo pipefail
want="${1:-test}"

# command-or-file that proves the package is there, then the package name
checks_demo=(
  "cmd:python3 python3"
  "pymod:venv python3-venv"
)
checks_test=(
  "${checks_demo[@]}"
  "cmd:mosquitto mosquitto"
  "lib:libportaudio.so.2 libportaudio2"
  "cmd:clang clang"
  "cmd:arm-none-eabi-gcc gcc-arm-none-eabi"
  "file:/usr/lib/arm-none-eabi/newlib/libc.a libnewlib-arm-none-eabi"
  "cmd:qemu-system-arm qemu-system-arm"
  "cmd:openssl openssl"
  "file:/usr/lib/postgresql/15/bin/initdb postgresql"
  "cmd:chromium chromium"
  "cmd:chromedriver chromium-driver"
  "cmd:espeak-ng espeak-ng"
  "cmd:flite flite"
)
if [ "$want" = demo ]; then checks=("${checks_demo[@]}"); else checks=("${checks_test[@]}"); fi

missing=()
for c in "${checks[@]}"; do
  probe="${c%% *}"; pkg="${c#* }"
  kind="${probe%%:*}"; what="${probe#*:}"
  case "$kind" in
    cmd) command -v "$what" >/dev/null 2>&1 || missing+=("$pkg") ;;
    pymod) python3 -c "import ensurepip, $what" >/dev/null 2>&1 || missing+=("$pkg") ;;
    lib) ldconfig -p 2>/dev/null | grep -q "$what" || missing+=("$pkg") ;;
    file) [ -e "$what" ] || missing+=("$pkg") ;;
  esac
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "ember: installing system packages: ${missing[*]}" >&2
if ! command -v apt-get >/dev/null 2>&1; then
  echo "ember: apt-get not found; install these packages with your package manager: ${missing[*]}" >&2
  exit 1
fi
if [ "$(id -u)" -eq 0 ]; then SUDO=""; elif sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
  echo "ember: need root to install packages; run: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq || echo "ember: apt-get update failed; trying with the package lists we have" >&2
if ! $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/tmp/ember-apt.log 2>&1; then
  echo "ember: apt-get install failed (log: /tmp/ember-apt.log); install by hand: ${missing[*]}" >&2
  tail -5 /tmp/ember-apt.log >&2
  exit 1
fi
