# The engine's internal headers (engine/src/*.h) are on the include path of the engine's own
# objects and of the tests that check internals only: app/, ui/, db/ and common/ know the
# engine by engine/include. Reads the compile commands of `make -n -B` (nothing is built).
. tests/cli/lib.sh
if ! command -v make >/dev/null 2>&1; then
    echo "SKIP: make is not installed"
    exit 0
fi
make --no-print-directory -n -B V=1 BUILD="$TMP/b" all >"$TMP/raw" 2>"$TMP/err" ||
    bad "make -n: $(head -2 "$TMP/err")"
# one line per command (the recipes continue lines with a backslash)
sed -e :a -e '/\\$/N; s/\\\n//; ta' "$TMP/raw" >"$TMP/cmds"

count() { grep -E -- "$1" "$TMP/cmds" | grep -c -- "$2"; }
for dir in app ui db common; do
    n=$(grep -cE -- " -c $dir/[a-z_0-9]+\.c" "$TMP/cmds")
    leak=$(count " -c $dir/[a-z_0-9]+\.c" "-Iengine/src")
    if [ "$n" -gt 0 ] && [ "$leak" -eq 0 ]; then ok "$dir/: $n objects, none with -Iengine/src"
    elif [ "$n" -eq 0 ]; then ok "$dir/: no sources (nothing to check)"
    else bad "$dir/: $leak of $n objects compiled with -Iengine/src"; fi
done
n=$(grep -cE -- " -c engine/src/[a-z_0-9]+\.c" "$TMP/cmds")
has=$(count " -c engine/src/[a-z_0-9]+\.c" "-Iengine/src")
if [ "$n" -gt 0 ] && [ "$has" -eq "$n" ]; then ok "engine/src: all $n objects see their internal headers"
else bad "engine/src: $has of $n objects with -Iengine/src"; fi
for t in test_kernels test_model test_model_ops test_train; do
    if count "tests/unit/$t\.c" "-Iengine/src" | grep -q '^[1-9]'; then ok "$t sees the internals"
    else bad "$t compiled without -Iengine/src"; fi
done
leak=$(grep -E -- "-o [^ ]*/tests/test_" "$TMP/cmds" | grep -- "-Iengine/src" |
    grep -vE "tests/unit/test_(kernels|model|model_ops|train)\.c" | wc -l)
if [ "$leak" -eq 0 ]; then ok "the other tests see engine/include only"
else bad "$leak other tests compiled with -Iengine/src"; fi

# no file above the engine names an internal header
hdrs=$(cd engine/src && ls ./*.h | sed 's|^\./||')
found=""
for h in $hdrs; do
    f=$(grep -lE "#include [\"<]([a-z./]*/)?$h[\">]" app/*/*.[ch] ui/*.[ch] db/*.[ch] common/*.c common/include/*/*.h \
        2>/dev/null | head -1)
    [ -n "$f" ] && found="$found $f:$h"
done
if [ -z "$found" ]; then ok "app, ui, db and common include no engine/src header"
else bad "engine internals included from:$found"; fi

# ui/ and common/ include nothing from app/ (no app -> ui -> app circle): no -Iapp on their
# objects, and no #include of an app/ header by name or by a relative path
for dir in ui common; do
    leak=$(count " -c $dir/[a-z_0-9]+\.c" "-Iapp")
    if [ "$leak" -eq 0 ]; then ok "$dir/: no object compiled with -Iapp"
    else bad "$dir/: $leak objects compiled with -Iapp"; fi
done
# (a bare name cannot reach app/ without -Iapp; a path could)
found=$(grep -lE '#include ["<][^">]*app/' ui/*.[ch] common/*.[ch] common/include/*/*.h 2>/dev/null |
    tr '\n' ' ')
if [ -z "$found" ]; then ok "ui and common include no app/ header by path"
else bad "app headers included by path from: $found"; fi

# app/ in folders: cli/ (the commands) may include the other folders' headers; bench/,
# convert/, monitor/ and serve/ include no other app/ folder (no circle between folders)
[ -f app/cli/main.c ] && ok "app/cli/ holds main.c" || bad "app/cli/main.c is missing"
loose=$(ls app/*.[ch] 2>/dev/null | tr '\n' ' ')
[ -z "$loose" ] && ok "no loose files in app/ (each in its folder)" || bad "loose files in app/: $loose"
for d in app/*/; do
    d=${d%/}; name=${d#app/}
    [ "$name" = cli ] && continue
    out=$(grep -hoE '#include "[a-z_]+/[a-z_0-9]+\.h"' "$d"/*.[ch] 2>/dev/null |
        sed 's/#include "//; s|/.*||' | grep -vE '^(bitnet|common)$' | sort -u | tr '\n' ' ')
    rel=$(grep -lE '#include "\.\./' "$d"/*.[ch] 2>/dev/null | tr '\n' ' ')
    if [ -z "$out$rel" ]; then ok "app/$name/ includes no other app/ folder"
    else bad "app/$name/ includes from: $out$rel"; fi
done

# ... and no call circle: the objects of bench/, convert/, monitor/ and serve/ call nothing
# that cli/ or another of them defines, and common/ and ui/ call nothing of app/
B=$(dirname "$BITNET")
if command -v nm >/dev/null 2>&1 && [ -d "$B/app/cli" ]; then
    defs_of() { nm --defined-only -g "$@" 2>/dev/null | awk 'NF == 3 {print $3}' | sort -u; }
    undef_of() { nm -u "$@" 2>/dev/null | awk '{print $NF}' | sort -u; }
    for d in bench convert monitor serve; do
        others=$(for e in cli bench convert monitor serve; do [ $e = $d ] || echo "$B"/app/$e/*.o; done)
        # shellcheck disable=SC2086
        calls=$(comm -12 "$(undef_of "$B"/app/$d/*.o >"$TMP/u"; echo "$TMP/u")" \
            "$(defs_of $others >"$TMP/d"; echo "$TMP/d")" | tr '\n' ' ')
        [ -z "$calls" ] && ok "app/$d/ calls no other app/ folder" || bad "app/$d/ calls: $calls"
    done
    undef_of "$B"/libbitnetcommon.a "$B"/libbitnetui.a >"$TMP/u"
    defs_of "$B"/app/*/*.o >"$TMP/d"
    calls=$(comm -12 "$TMP/u" "$TMP/d" | tr '\n' ' ')
    [ -z "$calls" ] && ok "common/ and ui/ call nothing of app/" || bad "common/ui call app's: $calls"
else
    echo "  SKIP call-circle checks (no nm or no $B/app objects)"
fi

# tests link the libraries: the only .c a test #includes is kernels_avx512.c, compiled again
# against tests/unit/avx512_emu.h by test_kernels.c (see the comment there)
inc=$(grep -lE '#include ["<][^">]*\.c[">]' tests/unit/*.c tests/fuzz/*.c tests/tools/*.c 2>/dev/null |
    grep -v '^tests/unit/test_kernels\.c$' | tr '\n' ' ')
if [ -z "$inc" ]; then ok "no test #includes a .c file (but test_kernels's emulated AVX-512)"
else bad "tests that #include a .c file: $inc"; fi
if grep -E '#include ["<][^">]*\.c[">]' tests/unit/test_kernels.c | grep -qv 'kernels_avx512\.c'; then
    bad "test_kernels.c #includes another .c"
else ok "test_kernels.c #includes kernels_avx512.c only"; fi
finish test_include_paths
