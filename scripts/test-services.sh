#!/bin/sh
# Installs the real programs the deployment tests run against (redis-server,
# nginx, archive tools, openssl, systemd-analyze, OpenSSH's sftp client), only
# those that are missing.
# The tests start their own redis-server and nginx on free loopback ports in
# temporary directories; nothing here starts or enables a system service.
set -eu

missing=""
need() {  # need <command> <debian package>
    command -v "$1" >/dev/null 2>&1 || missing="$missing $2"
}
need redis-server redis-server
need nginx nginx
need xz xz-utils
need zstd zstd
need unzip unzip
need zip zip
need openssl openssl
need useradd passwd
need systemd-analyze systemd
need sftp openssh-client

if [ -z "$missing" ]; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "test-services: missing packages:$missing (run as root or install them)" >&2
    exit 1
fi
echo "test-services: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
# Package scripts must not start the system services: the tests run their own.
policy=/usr/sbin/policy-rc.d
created_policy=""
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy"
    chmod 755 "$policy"
    created_policy=1
fi
cleanup() { if [ -n "$created_policy" ]; then rm -f "$policy"; fi; }
trap cleanup EXIT
apt-get -o DPkg::Lock::Timeout=300 update -qq
# shellcheck disable=SC2086
apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends $missing
