#!/usr/bin/env bash
# Builds cmdbus.exe for Windows on this Debian machine and runs the opt-in test that starts it
# under Wine against the local PostgreSQL and RabbitMQ (crates/cmdbus/tests/service/windows.rs):
#
#   scripts/windows.sh            # build (about 30 minutes on one core the first time), then test
#   scripts/windows.sh --build    # build only
#
# rustup cannot fetch the x86_64-pc-windows-gnu standard library here, so the build uses Debian
# bookworm's rustc-web (1.96) with its standard library source (rust-web-src) and builds std for
# the target (-Z build-std, RUSTC_BOOTSTRAP=1), linking with mingw-w64. Wine 8.0 (bookworm) has
# no bcryptprimitives.dll, where Rust's std finds ProcessPrng: a stand-in calling BCryptGenRandom
# (scripts/windows/bcryptprimitives.c) is put beside the test's cmdbus.exe, never shipped.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
missing=()
[ -x /usr/bin/rustc ] && /usr/bin/rustc --version | grep -q '^rustc 1\.9[6-9]' || missing+=(rustc-web)
[ -d /usr/lib/rustlib/src/rust/library ] || missing+=(rust-web-src)
[ -x /usr/bin/cargo ] || missing+=(cargo-web)
command -v x86_64-w64-mingw32-gcc >/dev/null || missing+=(gcc-mingw-w64-x86-64)
command -v wine >/dev/null || missing+=(wine wine64)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
fi

# Debian's toolchain, not rustup's (which has no std for the target), in a target dir of its own.
target_dir=target/windows-gnu
RUSTC_BOOTSTRAP=1 RUSTC=/usr/bin/rustc \
  CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER=x86_64-w64-mingw32-gcc \
  CARGO_TARGET_DIR="$target_dir" \
  /usr/bin/cargo build -p cmdbus --bin cmdbus --target x86_64-pc-windows-gnu -Z build-std
exe_dir="$target_dir/x86_64-pc-windows-gnu/debug"
x86_64-w64-mingw32-gcc -O2 -shared -o "$exe_dir/bcryptprimitives.dll" \
  scripts/windows/bcryptprimitives.c -lbcrypt
echo "built $exe_dir/cmdbus.exe"
[ "${1:-}" = --build ] && exit 0

CMDBUS_TEST_WINDOWS=1 CMDBUS_WINDOWS_EXE="$PWD/$exe_dir/cmdbus.exe" \
  cargo test -p cmdbus --test service windows:: -- --nocapture
