# The Makefile names a missing pkg-config library with its Debian package before compiling
# anything, and scripts/deps.sh works without dpkg-query and keeps test-only packages out of
# what make run needs. Nothing is installed or removed: pkg-config, dpkg-query and id are
# stand-ins in $TMP.
. tests/cli/lib.sh
if ! command -v make >/dev/null 2>&1; then
    echo "SKIP: make is not installed"
    exit 0
fi
real_pc=$(command -v pkg-config)
mkdir -p "$TMP/bin" "$TMP/nodpkg"

# a pkg-config that says the modules in $PC_MISSING are absent ("all": every one)
cat >"$TMP/bin/pc" <<STUB
#!/bin/sh
if [ "\$1" = --exists ]; then
    [ "\$PC_MISSING" = all ] && exit 1
    case " \$PC_MISSING " in *" \$2 "*) exit 1 ;; esac
fi
exec "$real_pc" "\$@"
STUB
chmod +x "$TMP/bin/pc"
mk() { make --no-print-directory -n BUILD="$TMP/build" PKG_CONFIG="$TMP/bin/pc" "$@"; }

expect_exit 2 "make stops on a missing library" -- env PC_MISSING=libcjson \
    make --no-print-directory -n BUILD="$TMP/build" PKG_CONFIG="$TMP/bin/pc"
expect_grep "missing library: libcjson (Debian package libcjson-dev); run make deps" "$TMP/err" \
    "the library and its Debian package are named"
expect_one_line_err "missing library"
if grep -q 'cc \|fatal error' "$TMP/out" "$TMP/err"; then bad "nothing compiled"; else
    ok "nothing compiled"; fi

PC_MISSING=all; export PC_MISSING
expect_exit 2 "every library missing" -- mk all
expect_grep "missing libraries: libpcre2-8 (Debian package libpcre2-dev), " "$TMP/err" \
    "several libraries in one line"
if grep -q unknown "$TMP/err"; then bad "a pkg-config module without a Debian name: $(cat "$TMP/err")"
else ok "every pkg-config module the Makefile uses has a Debian name"; fi
sed 's/(Debian package \([^)]*\))/\n\1\n/g' "$TMP/err" | grep -v ' ' | sort -u >"$TMP/debs"
PATH="$TMP/nodpkg" /bin/sh scripts/deps.sh >"$TMP/list" 2>&1
missing_from_list=""
for d in $(cat "$TMP/debs"); do
    grep -q " $d\( \|$\)" "$TMP/list" || missing_from_list="$missing_from_list $d"
done
if [ -z "$missing_from_list" ] && [ -s "$TMP/debs" ]; then
    ok "deps.sh lists the Debian package of every library ($(wc -l <"$TMP/debs"))"
else bad "not in deps.sh:$missing_from_list"; fi
expect_exit 0 "make deps itself needs no library" -- mk deps
expect_exit 0 "make clean needs none" -- mk clean

PC_MISSING=cmocka
expect_exit 0 "the binary builds without CMocka" -- mk bin
expect_exit 2 "the tests need CMocka" -- mk all
expect_grep "missing library: cmocka (Debian package libcmocka-dev)" "$TMP/err" "CMocka named"
unset PC_MISSING

expect_exit 1 "a missing pkg-config program" -- \
    env PKG_CONFIG="$TMP/no-such-pkg-config" sh scripts/deps.sh --pkg-config zlib
expect_grep "missing program: .*no-such-pkg-config (Debian package pkg-config)" "$TMP/out" \
    "pkg-config itself named"

# deps.sh where dpkg-query is absent: a PATH holding only the tools it may use
for t in grep id cat; do ln -s "$(command -v $t)" "$TMP/nodpkg/$t"; done
expect_exit 0 "deps.sh without dpkg-query" -- env PATH="$TMP/nodpkg" /bin/sh scripts/deps.sh
expect_grep "no dpkg-query" "$TMP/out" "says why it cannot check"
expect_grep " libcjson-dev " "$TMP/out" "lists a build package"
expect_grep " prometheus " "$TMP/out" "lists a test package"
expect_exit 0 "deps.sh --run without dpkg-query" -- env PATH="$TMP/nodpkg" /bin/sh scripts/deps.sh --run
expect_grep " libcjson-dev " "$TMP/out" "--run lists a build package"
if grep -q 'prometheus\|libcmocka-dev\|tmux' "$TMP/out"; then bad "--run lists test packages"
else ok "--run leaves out prometheus, CMocka and tmux"; fi

# with dpkg-query saying everything but prometheus is installed (and not as root)
mkdir -p "$TMP/dpkg"
cat >"$TMP/dpkg/dpkg-query" <<'STUB'
#!/bin/sh
for a; do p=$a; done
[ "$p" = prometheus ] && exit 1
printf 'install ok installed'
STUB
printf '#!/bin/sh\necho 1000\n' >"$TMP/dpkg/id"
chmod +x "$TMP/dpkg/dpkg-query" "$TMP/dpkg/id"
ln -s "$(command -v grep)" "$TMP/dpkg/grep"
expect_exit 0 "make run's packages do not include prometheus" -- \
    env PATH="$TMP/dpkg" /bin/sh scripts/deps.sh --run
expect_exit 1 "make test's packages do" -- env PATH="$TMP/dpkg" /bin/sh scripts/deps.sh
expect_grep "sudo apt-get install -y prometheus" "$TMP/err" "the command to run is printed"
expect_exit 2 "an unknown option" -- sh scripts/deps.sh --bogus
finish test_deps
