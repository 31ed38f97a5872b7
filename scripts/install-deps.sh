#!/usr/bin/env bash
# Installs the Debian packages resilite's build, tests, examples and benchmarks need, if missing.
set -euo pipefail

packages=(cmake make g++ clang pkg-config libsqlite3-dev sqlite3 libboost-dev libfmt-dev nlohmann-json3-dev catch2
          librapidcheck-dev libbenchmark-dev libsqlitecpp-dev rclone libcli11-dev libspdlog-dev)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "installing: ${missing[*]}"
sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then sudo_cmd=(sudo); fi
"${sudo_cmd[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
