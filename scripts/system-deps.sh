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
  # the city platform's lab: a real RabbitMQ cluster (MQTT plugin) and a real PostgreSQL,
  # each run by the fixtures as their own instances in temp dirs (edgeguard/lab/rabbitmq.py,
  # edgeguard/lab/postgres.py); the packages' system services must not hold ports
  rabbitmq-server
  postgresql
)

# The packages' own services: mosquitto's broker on :1883, RabbitMQ on :5672/:25672 (and its
# epmd on :4369), PostgreSQL on :5432. The tests, demo and lab run their own instances, so the
# system ones are stopped and disabled, whether apt just started them or an earlier run did.
services=(mosquitto rabbitmq-server postgresql epmd.socket epmd)

sudo=()
[ "$(id -u)" -eq 0 ] || sudo=(sudo)

stop_system_services() {
  if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    local unit
    for unit in "${services[@]}"; do
      if systemctl is-enabled --quiet "$unit" 2>/dev/null || systemctl is-active --quiet "$unit" 2>/dev/null; then
        "${sudo[@]}" systemctl disable --now "$unit" >/dev/null 2>&1 || true
      fi
    done
    return 0
  fi
  # No systemd (a container): apt's invoke-rc.d starts services unless policy-rc.d forbids it
  # (exit 101). Stop whatever the init scripts did start, as the packages' own users run it.
  if [ -x /etc/init.d/postgresql ] && pgrep -u postgres -x postgres >/dev/null 2>&1; then
    "${sudo[@]}" /etc/init.d/postgresql stop >/dev/null 2>&1 || true
  fi
  if [ -x /etc/init.d/rabbitmq-server ] && pgrep -u rabbitmq beam.smp >/dev/null 2>&1; then
    "${sudo[@]}" /etc/init.d/rabbitmq-server stop >/dev/null 2>&1 || true
  fi
  if pgrep -u rabbitmq -x epmd >/dev/null 2>&1; then
    "${sudo[@]}" pkill -u rabbitmq -x epmd || true
  fi
  if [ -x /etc/init.d/mosquitto ] && pgrep -u mosquitto -x mosquitto >/dev/null 2>&1; then
    "${sudo[@]}" /etc/init.d/mosquitto stop >/dev/null 2>&1 || true
  fi
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
fi
stop_system_services
