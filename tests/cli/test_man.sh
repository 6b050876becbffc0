# The manual pages lint clean (mandoc -Tlint, warnings and up).
. tests/cli/lib.sh
if ! command -v mandoc >/dev/null 2>&1; then
    echo "SKIP: mandoc is not installed (make deps installs it)"
    exit 0
fi
for m in man/*.[1-8]; do
    if mandoc -Tlint -Wwarning "$m" >"$TMP/lint" 2>&1 && [ ! -s "$TMP/lint" ]; then
        ok "$m lints clean"
    else
        bad "$m: $(head -3 "$TMP/lint")"
    fi
done
finish test_man
