#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine for Kiln (as root), builds it, puts `kiln` on PATH, builds the test guest,
# and boots it. `./setup.sh --no-boot` stops before booting (CI uses it).
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")"
boot=1
[ "${1:-}" = "--no-boot" ] && boot=0

packages=(build-essential make gcc binutils qemu-system-x86 qemu-utils linux-image-amd64 busybox-static cpio acpica-tools)
missing=()
for p in "${packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
command -v dotnet >/dev/null || { echo "setup: the .NET 10 SDK (dotnet) is required and is not installed" >&2; exit 1; }

echo "setup: building Kiln"
dotnet build Kiln.sln -c Release --nologo -v quiet -clp:ErrorsOnly
./kiln version
ln -sf "$PWD/kiln" /usr/local/bin/kiln

echo "setup: building the test guest"
make -s -C guest

if [ $boot = 1 ]; then
  if [ -e /dev/kvm ]; then
    echo "setup: booting the test guest under Kiln"
    kiln run --kernel guest/build/testguest.elf --cmdline "test=exit code=0 msg=Kiln_is_set_up"
  else
    echo "setup: /dev/kvm is absent: Kiln is built but cannot boot a guest on this machine" >&2
  fi
fi
