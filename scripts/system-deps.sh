#!/usr/bin/env bash
# Install the Debian packages edgeguard's build, tests and demo need, if any is missing.
# Used by `make test` / `make demo` (and so by CI). Safe to run again: installs only what lacks.
set -euo pipefail

packages=(
  mosquitto        # the local broker for tests and the demo
  libsystemd-dev   # headers for systemd-python (sd_notify, journald)
  pkg-config       # systemd-python's build finds libsystemd with it
  gcc              # builds systemd-python
  python3-dev      # Python headers for the same
  python3-venv     # `python3 -m venv` on Debian
  systemd          # systemd-analyze verify for the unit test
  shellcheck       # lints scripts/*.sh in the tests
  # the RTSP server that serves real footage as a camera in tests, bench and demo
  # (gst-rtsp-server, run by Debian's own python3; see edgeguard/lab/rtsp_server.py)
  python3-gi
  gir1.2-gst-rtsp-server-1.0
  gstreamer1.0-plugins-good  # qtdemux, rtph264pay
  gstreamer1.0-plugins-bad   # h264parse
  ffmpeg                     # ffprobe checks snapshots/clips in tests
  # the consoles' browser tests: Playwright drives Debian's Chromium (never a downloaded one)
  chromium
  chromium-driver
  fonts-wqy-microhei         # Chinese text in the screenshots
  stress-ng                  # loads the CPUs to check the tests pass on a busy machine
)

missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "system-deps: installing ${missing[*]}"
sudo=()
[ "$(id -u)" -eq 0 ] || sudo=(sudo)
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
# mosquitto's package starts a system broker on :1883; the tests and demo run their own.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet mosquitto 2>/dev/null; then
  "${sudo[@]}" systemctl disable --now mosquitto >/dev/null 2>&1 || true
fi
