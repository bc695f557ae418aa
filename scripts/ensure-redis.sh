#!/usr/bin/env bash
# Installs Debian's redis-server for the Redis store's tests when it is missing.
# The tests start their own redis-server on a free port in a temporary directory;
# the system service is not needed and is left as the package sets it up.
set -euo pipefail
if command -v redis-server >/dev/null 2>&1 || [ -x /usr/bin/redis-server ]; then
  exit 0
fi
echo "installing Debian's redis-server for the Redis store's tests" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get -o DPkg::Lock::Timeout=300 update -qq
$SUDO apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends redis-server >/dev/null
