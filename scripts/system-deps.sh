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
  # the monthly reports: Chinese in the charts and PDF; pdftoppm/pdftotext check them in tests
  fonts-noto-cjk
  poppler-utils
  stress-ng                  # loads the CPUs to check the tests pass on a busy machine
  # the city platform's lab: a real RabbitMQ cluster (MQTT plugin) and a real PostgreSQL,
  # each run by the fixtures as their own instances in temp dirs (edgeguard/lab/rabbitmq.py,
  # edgeguard/lab/postgres.py); the packages' system services must not hold ports
  rabbitmq-server
  postgresql
)

# The packages' own services: mosquitto's broker on :1883, RabbitMQ on :5672/:25672 (and its
# epmd on :4369), PostgreSQL on :5432. The tests, demo and lab run their own instances on free
# ports, so the ones apt starts when it installs the packages are stopped and disabled; a
# service the machine already had (a developer's own PostgreSQL) is left alone.
sudo=()
[ "$(id -u)" -eq 0 ] || sudo=(sudo)

just_installed() {  # is package $1 among those this run installed?
  local pkg
  for pkg in "${missing[@]}"; do [ "$pkg" = "$1" ] && return 0; done
  return 1
}

units_of() {  # the system services package $1 starts
  case "$1" in
    mosquitto) echo mosquitto ;;
    rabbitmq-server) echo rabbitmq-server epmd.socket epmd ;;
    postgresql) echo postgresql ;;
  esac
}

stop_system_services() {
  local pkg unit
  for pkg in mosquitto rabbitmq-server postgresql; do
    just_installed "$pkg" || continue
    if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
      for unit in $(units_of "$pkg"); do
        "${sudo[@]}" systemctl disable --now "$unit" >/dev/null 2>&1 || true
      done
    elif [ -x "/etc/init.d/$pkg" ]; then
      # No systemd (a container): apt's invoke-rc.d starts services unless policy-rc.d
      # forbids it (exit 101); stop whatever the init script did start.
      "${sudo[@]}" "/etc/init.d/$pkg" stop >/dev/null 2>&1 || true
      [ "$pkg" = rabbitmq-server ] && { "${sudo[@]}" pkill -u rabbitmq -x epmd || true; }
    fi
  done
}

missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "system-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
  stop_system_services
fi
