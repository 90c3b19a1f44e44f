#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine for Kiln (as root): packages, Kiln itself (`kiln` on PATH), the ring-3 test
# guest, and the guest kit (Linux kernel + busybox initramfs, built once and cached in /var/cache/kiln/guest-kit).
# Then it boots the kit's Linux to a busybox shell on this terminal: `poweroff` there ends it with status 0.
# `./setup.sh --no-boot` stops before booting (CI uses it).
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")"
boot=1
[ "${1:-}" = "--no-boot" ] && boot=0

packages=(build-essential make gcc binutils qemu-system-x86 qemu-utils linux-image-amd64 busybox-static cpio acpica-tools
          e2fsprogs iproute2)
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

echo "setup: building the guest kit (cached after the first time; the first build compiles a kernel, ~12 min)"
kit_out=$(kiln guest-kit build)
echo "$kit_out"
boot_line=$(printf '%s\n' "$kit_out" | sed -n 's/^ *boot with *//p')
[ -n "$boot_line" ] || { echo "setup: kiln guest-kit build printed no boot command" >&2; exit 1; }

if [ $boot = 1 ]; then
  if [ -e /dev/kvm ]; then
    echo "setup: booting Linux under Kiln: a busybox shell opens on this terminal once /init is up"
    echo "setup: (on hosts whose KVM emulates guest ring 0 that takes about 1.5 min; 'poweroff' ends it, C-a x quits)"
    eval "$boot_line"
  else
    echo "setup: /dev/kvm is absent: Kiln is built but cannot boot a guest on this machine" >&2
  fi
fi
