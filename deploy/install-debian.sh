#!/usr/bin/env bash
# Installs the Debian packages fieldmesh needs, only those missing; safe to run again.
# Groups: core (database, broker), web (headless Chromium), render (Mesa for open3d).
set -euo pipefail

core=(postgresql postgresql-15-postgis-3 mosquitto mosquitto-clients)
# engage: Dovecot (IMAP mailboxes, LMTP delivery), Kannel with its fake SMS centre
mail=(dovecot-imapd dovecot-lmtpd kannel kannel-extras)
web=(chromium)
render=(libusb-1.0-0 libgl1 libegl1 libegl-mesa0 libgl1-mesa-dri libgomp1 libglib2.0-0)
node=(nodejs npm)

want=("${core[@]}" "${mail[@]}" "${web[@]}" "${render[@]}")
command -v npm >/dev/null 2>&1 || want+=("${node[@]}")

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "installing Debian packages: ${missing[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
  sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
# The packages start system-wide services; fieldmesh runs its own, so stop theirs.
for svc in mosquitto postgresql dovecot kannel; do
  $sudo service "$svc" stop >/dev/null 2>&1 || true
done
