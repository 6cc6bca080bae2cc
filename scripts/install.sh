#!/usr/bin/env bash
# Install (or upgrade) edgeguard on a Raspberry Pi (Raspberry Pi OS bookworm)
# or an industrial PC (Debian 12). Run as root from a checkout of the repo:
#
#     sudo scripts/install.sh [--skip-apt] [--with-mosquitto-clients]
#
# Safe to run again: every step checks what is already there. It never
# overwrites /etc/edgeguard/edgeguard.yaml or an existing signing key.
# See docs/install.md for what each step does and why.
set -euo pipefail
# Everything under /opt/edgeguard must be readable by the edgeguard user even
# if root's umask is stricter; secrets get explicit modes below.
umask 022

readonly SERVICE_USER=edgeguard
readonly PREFIX=/opt/edgeguard
readonly VENV="$PREFIX/.venv"
readonly CONF_DIR=/etc/edgeguard
readonly CONF_FILE="$CONF_DIR/edgeguard.yaml"
readonly CRED_DIR="$CONF_DIR/credentials"
readonly STATE_DIR=/var/lib/edgeguard
readonly UNIT_DST=/etc/systemd/system/edgeguard.service
readonly GPIO_UDEV_RULE=/etc/udev/rules.d/60-edgeguard-gpio.rules
# Raspberry Pi OS ships this rule file; it already gives the gpio group
# access to /dev/gpiochip*.
readonly RPI_UDEV_RULES=/etc/udev/rules.d/99-com.rules

SRC_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly SRC_DIR

skip_apt=0
with_mosquitto_clients=0

log() { printf '==> %s\n' "$*"; }
warn() { printf 'WARNING: %s\n' "$*" >&2; }
die() {
    printf 'ERROR: %s\n' "$*" >&2
    exit 1
}

usage() {
    cat <<EOF
Usage: $0 [--skip-apt] [--with-mosquitto-clients]

Installs edgeguard from this checkout ($SRC_DIR) into $PREFIX and
sets up the edgeguard user, $CONF_DIR, the site signing key and the
systemd unit.

  --skip-apt                 do not install Debian packages (they must
                             already be installed)
  --with-mosquitto-clients   also install mosquitto-clients (mosquitto_pub /
                             mosquitto_sub, handy for testing the broker)
  -h, --help                 show this help
EOF
}

parse_args() {
    while (($# > 0)); do
        case "$1" in
        --skip-apt) skip_apt=1 ;;
        --with-mosquitto-clients) with_mosquitto_clients=1 ;;
        -h | --help)
            usage
            exit 0
            ;;
        *)
            usage >&2
            die "unknown option: $1"
            ;;
        esac
        shift
    done
}

preflight() {
    [[ ${EUID} -eq 0 ]] || die "run as root (sudo $0)"
    [[ -f "$SRC_DIR/pyproject.toml" && -f "$SRC_DIR/systemd/edgeguard.service" ]] ||
        die "$SRC_DIR does not look like an edgeguard checkout"
    command -v systemctl >/dev/null || die "systemd is required (systemctl not found)"
}

install_packages() {
    if ((skip_apt)); then
        log "Skipping apt (--skip-apt)"
        return
    fi
    # python3-dev, gcc, pkg-config and libsystemd-dev build systemd-python
    # (sd_notify/watchdog), which has no binary wheels.
    local -a pkgs=(python3 python3-venv python3-dev gcc pkg-config libsystemd-dev adduser)
    if ((with_mosquitto_clients)); then
        pkgs+=(mosquitto-clients)
    fi
    log "Installing Debian packages: ${pkgs[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${pkgs[@]}"
}

ensure_group() {
    local group="$1"
    if ! getent group "$group" >/dev/null; then
        log "Creating system group $group"
        groupadd --system "$group"
    fi
}

setup_groups() {
    # dialout owns the serial ports on every Debian system; create it only on
    # an unusual image that lacks it, since the unit's SupplementaryGroups=
    # fails the service (status 216/GROUP) if a group does not exist.
    ensure_group dialout

    # gpio exists on Raspberry Pi OS, whose udev rules hand it the GPIO chips.
    # A plain Debian PC has neither, so create the group and an equivalent
    # udev rule (otherwise /dev/gpiochip* stays root-only).
    ensure_group gpio
    if [[ ! -e "$RPI_UDEV_RULES" ]]; then
        local rule='SUBSYSTEM=="gpio", KERNEL=="gpiochip*", GROUP="gpio", MODE="0660"'
        if [[ ! -f "$GPIO_UDEV_RULE" ]] || ! grep -qxF "$rule" "$GPIO_UDEV_RULE"; then
            log "Installing $GPIO_UDEV_RULE (gpio group may use /dev/gpiochip*)"
            install -d -m 0755 "$(dirname "$GPIO_UDEV_RULE")"
            printf '# Installed by edgeguard scripts/install.sh\n%s\n' "$rule" >"$GPIO_UDEV_RULE"
            chmod 0644 "$GPIO_UDEV_RULE"
            if command -v udevadm >/dev/null && [[ -d /run/udev ]]; then
                udevadm control --reload-rules
                udevadm trigger --subsystem-match=gpio --action=add
            fi
        fi
    fi
}

setup_user() {
    if id "$SERVICE_USER" >/dev/null 2>&1; then
        log "User $SERVICE_USER already exists"
    else
        log "Creating system user $SERVICE_USER"
        adduser --system --group --home "$STATE_DIR" --no-create-home \
            --shell /usr/sbin/nologin "$SERVICE_USER"
    fi
    local group
    for group in gpio dialout; do
        if getent group "$group" >/dev/null; then
            usermod -a -G "$group" "$SERVICE_USER"
        fi
    done
    # systemd's StateDirectory= creates this too; creating it here lets
    # `edgeguard check-config` and friends run before the first start.
    install -d -o "$SERVICE_USER" -g "$SERVICE_USER" -m 0750 "$STATE_DIR"
}

setup_venv() {
    # Recreate the venv if its interpreter no longer runs (e.g. the system
    # Python was replaced by a distribution upgrade).
    if [[ -x "$VENV/bin/python" ]] && ! "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
        warn "$VENV is broken, recreating it"
        rm -rf "$VENV"
    fi
    if [[ ! -x "$VENV/bin/python" ]]; then
        log "Creating virtualenv $VENV"
        install -d -m 0755 "$PREFIX"
        python3 -m venv "$VENV"
    fi
    log "Installing edgeguard from $SRC_DIR into $VENV"
    # A non-editable install: /opt/edgeguard keeps working if the checkout is
    # moved or deleted. pip always rebuilds and reinstalls a local directory,
    # even when the version number did not change.
    "$VENV/bin/python" -m pip install --quiet --no-cache-dir "$SRC_DIR"
    [[ -x "$VENV/bin/edgeguard" ]] || die "$VENV/bin/edgeguard was not installed"
    # Operators run `edgeguard status`, `reset`, `events` as themselves.
    ln -sfn "$VENV/bin/edgeguard" /usr/local/bin/edgeguard
    install -D -m 0644 "$SRC_DIR/docs/install.md" "$PREFIX/docs/install.md"
}

setup_config() {
    # 0750 root:edgeguard: the service can read its configuration but never
    # write it. The unit's ConfigurationDirectoryMode= keeps the same mode.
    install -d -o root -g "$SERVICE_USER" -m 0750 "$CONF_DIR"
    if [[ -e "$CONF_FILE" ]]; then
        log "Keeping existing $CONF_FILE"
        if [[ -n "$(find "$CONF_FILE" -perm /o=rwx)" ]]; then
            warn "$CONF_FILE is accessible to all users; consider: chmod 0640 $CONF_FILE"
        fi
    else
        local example="$SRC_DIR/config/edgeguard.example.yaml"
        [[ -f "$example" ]] || die "$example is missing from the checkout"
        log "Installing example configuration as $CONF_FILE"
        install -o root -g "$SERVICE_USER" -m 0640 "$example" "$CONF_FILE"
    fi
    # Credentials are read by systemd (as root) and handed to the service via
    # LoadCredential=; the service user never reads this directory.
    install -d -o root -g root -m 0700 "$CRED_DIR"
}

setup_signing_key() {
    local key="$CRED_DIR/site.key" pub="$CRED_DIR/site.pub"
    if [[ -e "$key" ]]; then
        log "Keeping existing signing key $key"
    else
        log "Generating the site signing key $key"
        (umask 077 && "$VENV/bin/edgeguard" keygen --out "$key")
        [[ -f "$key" ]] || die "edgeguard keygen did not create $key"
        chown root:root "$key"
        chmod 0600 "$key"
        new_key=1
    fi
    if [[ -f "$pub" ]]; then
        # The public key is not secret: keep a readable copy next to the
        # config so operators can hand it over without root.
        install -o root -g "$SERVICE_USER" -m 0644 "$pub" "$CONF_DIR/site.pub"
    else
        warn "no public key found at $pub"
    fi
}

install_unit() {
    log "Installing $UNIT_DST"
    install -m 0644 "$SRC_DIR/systemd/edgeguard.service" "$UNIT_DST"
    if [[ -d /run/systemd/system ]]; then
        systemctl daemon-reload
        # Show any complaint systemd has about the unit on this machine.
        systemd-analyze verify "$UNIT_DST" || warn "systemd-analyze verify reported problems"
    else
        warn "systemd is not running (container or chroot?); run 'systemctl daemon-reload' on the target"
    fi
}

print_next_steps() {
    local active=0
    if [[ -d /run/systemd/system ]] && systemctl is-active --quiet edgeguard.service; then
        active=1
    fi
    echo
    log "edgeguard is installed."
    if ((new_key)) && [[ -f "$CONF_DIR/site.pub" ]]; then
        cat <<EOF

A new site signing key was generated. Its PUBLIC key is:

    $CONF_DIR/site.pub   (copy of $CRED_DIR/site.pub)

$(sed 's/^/    /' "$CONF_DIR/site.pub")

Give this public key to the police (it lets them verify this site's
events). The private key $CRED_DIR/site.key never leaves this machine.
EOF
    fi
    cat <<EOF

Next steps:
  1. Edit $CONF_FILE (broker, site id, buttons).
  2. Put secrets into $CRED_DIR (root-only, mode 0600), as needed:
       mqtt-password   the MQTT password        -> {credential: mqtt-password}
       client.key      the TLS client key (PEM) -> {credential: mqtt-client-key}
  3. Check the configuration:
       $VENV/bin/edgeguard check-config -c $CONF_FILE
  4. Start it now and at every boot:
       systemctl enable --now edgeguard
       journalctl -u edgeguard -f
EOF
    if ((active)); then
        cat <<EOF

edgeguard is running the previous version; restart it to use this one:
       systemctl restart edgeguard
EOF
    fi
}

main() {
    parse_args "$@"
    preflight
    new_key=0
    install_packages
    setup_groups
    setup_user
    setup_venv
    setup_config
    setup_signing_key
    install_unit
    print_next_steps
}

main "$@"
