#!/bin/sh
# The Debian packages bitnet needs, installed when they are missing.
#
#   sh scripts/deps.sh --run   what `make run` needs: build the program and run it
#   sh scripts/deps.sh         that, plus what only `make test` needs (CMocka, tmux, mandoc,
#                              prometheus, the sqlite3 command, curl, openssl, ONNX test data,
#                              redis-server, haproxy, yamllint, and with pip the openai Python
#                              client and kubernetes-validate)
#   sh scripts/deps.sh --pkg-config NAME...
#                              (the Makefile's check) prints one line naming the pkg-config
#                              libraries among NAME... that $PKG_CONFIG cannot find, with their
#                              Debian packages, and exits 1; prints nothing and exits 0 if all
#                              are found
#
# As root it runs apt-get; otherwise it prints the exact command to run and exits 1.
# Where dpkg-query is absent (not Debian) it cannot tell what is installed: it prints the
# packages to install (Debian names) and exits 0, and the Makefile's pkg-config check then
# names any library that is still missing before compiling anything.
set -e
# build and run: compiler, pkg-config, protoc-c and the libraries the Makefile's *_PKGS name;
# zlib: gzip answers of the metrics endpoint; libcrypt (bcrypt) and libyaml: its web config;
# hiredis: serve --redis, the limits shared by replicas (a small, well-kept Redis client)
RUN_PKGS="build-essential pkg-config libcjson-dev libpcre2-dev libsqlite3-dev nettle-dev libncurses-dev"
RUN_PKGS="$RUN_PKGS libzip-dev libprotobuf-c-dev protobuf-c-compiler libmicrohttpd-dev"
RUN_PKGS="$RUN_PKGS libcurl4-openssl-dev libreadline-dev zlib1g-dev libcrypt-dev libyaml-dev"
RUN_PKGS="$RUN_PKGS liblapacke-dev libopenblas-dev"  # linear algebra (bitnet/linalg.h)
RUN_PKGS="$RUN_PKGS libhiredis-dev"
# images (bitnet/image.h): libjpeg-turbo and libpng decode, libexif reads the orientation tag
RUN_PKGS="$RUN_PKGS libjpeg62-turbo-dev libpng-dev libexif-dev"
# libpq: serve --database, the platform's store on PostgreSQL (PostgreSQL's own client library)
RUN_PKGS="$RUN_PKGS libpq-dev"
# test only: CMocka (the unit tests), mandoc (test_man.sh), tmux (test_tui.sh), the ONNX
# test data (test_onnx), prometheus (promtool and the server, test_monitor.sh; it skips
# without), the sqlite3 command (history and monitor tests edit a database by hand), curl and
# openssl (test_monitor_http.sh: keep-alive, gzip, a self-signed certificate, https)
TEST_PKGS="libcmocka-dev mandoc tmux libonnx-testdata prometheus sqlite3 curl openssl"
# redis-server and haproxy: test_serve_redis.sh and test_scaleout.sh (replicas sharing limits
# behind a load balancer); yamllint: test_deploy.sh (the Kubernetes manifests); each skips without
TEST_PKGS="$TEST_PKGS redis-server haproxy yamllint"
# dataset-fashion-mnist: Fashion-MNIST (the IDX files), whose 10,000 test images
# test_vision_fashion.sh classifies with the bundled vision models (it skips without)
TEST_PKGS="$TEST_PKGS dataset-fashion-mnist"
# postgresql: the server test_serve_pg.sh and test_scaleout.sh start in a temporary folder (they
# skip without)
TEST_PKGS="$TEST_PKGS postgresql"

# test only, from PyPI (Debian 12 has no package of them): the official openai Python client,
# which test_serve.sh runs against bitnet serve (it skips that part without it), and
# kubernetes-validate, which test_deploy.sh runs on deploy/ (the Kubernetes schemas; it skips
# without); Pillow and numpy, the reference test_image.sh compares the image decoders and
# transforms with (torchvision too when it is installed; it skips without Pillow); installed
# with python3 -m pip when python3 lacks one; a failure only says so
PY_TEST_PKGS="openai:openai kubernetes-validate:kubernetes_validate Pillow:PIL numpy:numpy"
py_test_deps() {
    command -v python3 >/dev/null 2>&1 || return 0
    for pm in $PY_TEST_PKGS; do
        pkg=${pm%%:*} mod=${pm#*:}
        python3 -c "import $mod" 2>/dev/null && continue
        echo "deps: installing the Python package $pkg (pip)"
        python3 -m pip install -q "$pkg" ||
            echo "deps: pip install $pkg failed; the tests that use it skip that part" >&2
    done
    return 0
}

# deb_of NAME: the Debian package that ships pkg-config module NAME
deb_of() {
    case $1 in
    libpcre2-8) echo libpcre2-dev ;;
    libzip) echo libzip-dev ;;
    libprotobuf-c) echo libprotobuf-c-dev ;;
    libcjson) echo libcjson-dev ;;
    nettle) echo nettle-dev ;;
    libmicrohttpd) echo libmicrohttpd-dev ;;
    libcurl) echo libcurl4-openssl-dev ;;
    readline) echo libreadline-dev ;;
    zlib) echo zlib1g-dev ;;
    libcrypt) echo libcrypt-dev ;;
    yaml-0.1) echo libyaml-dev ;;
    cmocka) echo libcmocka-dev ;;
    sqlite3) echo libsqlite3-dev ;;
    ncursesw) echo libncurses-dev ;;
    lapacke) echo liblapacke-dev ;;
    openblas) echo libopenblas-dev ;;
    hiredis) echo libhiredis-dev ;;
    libjpeg) echo libjpeg62-turbo-dev ;;
    libpng) echo libpng-dev ;;
    libexif) echo libexif-dev ;;
    libpq) echo libpq-dev ;;
    *) echo "unknown; add it to scripts/deps.sh" ;;
    esac
}

pkg_config_check() {
    pc=${PKG_CONFIG:-pkg-config}
    if ! command -v "$pc" >/dev/null 2>&1; then
        echo "missing program: $pc (Debian package pkg-config); run make deps"
        return 1
    fi
    list="" n=0 seen=""
    for m in "$@"; do
        case " $seen " in *" $m "*) continue ;; esac
        seen="$seen $m"
        "$pc" --exists "$m" 2>/dev/null && continue
        list="${list:+$list, }$m (Debian package $(deb_of "$m"))"
        n=$((n + 1))
    done
    [ "$n" -eq 0 ] && return 0
    [ "$n" -eq 1 ] && what="library" || what="libraries"
    echo "missing $what: $list; run make deps"
    return 1
}

case ${1:-} in
--pkg-config) shift; pkg_config_check "$@"; exit $? ;;
--run) PKGS=$RUN_PKGS; for_what="make run" ;;
"") PKGS="$RUN_PKGS $TEST_PKGS"; for_what="make run and make test" ;;
*) echo "deps: unknown option '$1' (--run, --pkg-config NAME...)" >&2; exit 2 ;;
esac

if [ -z "${1:-}" ]; then py_test_deps; fi
if ! command -v dpkg-query >/dev/null 2>&1; then
    echo "deps: no dpkg-query here, so installed packages cannot be checked; $for_what need" \
        "these Debian packages (or your system's equivalents):"
    echo "  $PKGS"
    echo "deps: the build then names any pkg-config library still missing"
    exit 0
fi
missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ]; then
    echo "deps: installing$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq || { echo "deps: apt-get update failed" >&2; exit 1; }
    apt-get install -y -qq --no-install-recommends $missing || {
        echo "deps: apt-get install failed for:$missing" >&2; exit 1; }
else
    echo "deps: missing Debian packages:$missing" >&2
    echo "deps: run: sudo apt-get install -y$missing" >&2
    exit 1
fi
