#!/bin/sh
# The binary is built hardened: PIE, full RELRO (BIND_NOW), the stack protector, and
# _FORTIFY_SOURCE's checked calls (except in the sanitizer builds, which check them their own way).
. "$(dirname "$0")/lib.sh"

if ! command -v readelf >/dev/null 2>&1; then
    echo "SKIP: readelf (binutils) is not installed"; finish test_hardening; exit
fi
readelf -h "$BITNET" >"$TMP/h" 2>&1
expect_grep 'Type:[[:space:]]*DYN' "$TMP/h" "PIE: the binary is position independent"
readelf -lW "$BITNET" >"$TMP/l" 2>&1
expect_grep 'GNU_RELRO' "$TMP/l" "RELRO: a read-only-after-relocation segment"
readelf -dW "$BITNET" >"$TMP/d" 2>&1
if grep -q 'BIND_NOW' "$TMP/d" || grep -q 'FLAGS_1.*NOW' "$TMP/d"; then ok "full RELRO: BIND_NOW";
else bad "full RELRO: no BIND_NOW in the dynamic section"; fi
readelf --dyn-syms -W "$BITNET" >"$TMP/s" 2>&1
expect_grep '__stack_chk_fail' "$TMP/s" "stack protector: __stack_chk_fail is called"
if grep -q '__asan_init\|__tsan_init' "$TMP/s"; then
    ok "fortify: not checked in a sanitizer build"
else
    expect_grep '__[a-z_]*_chk' "$TMP/s" "fortify: checked variants of libc calls (_FORTIFY_SOURCE)"
fi
finish test_hardening
