#!/bin/sh
# Installs the Debian packages bitnet needs to build and test, when they are missing.
# As root it runs apt-get; otherwise it prints the exact command to run.
set -e
PKGS="build-essential pkg-config libcmocka-dev libcjson-dev libpcre2-dev libsqlite3-dev nettle-dev mandoc libncurses-dev tmux libzip-dev libprotobuf-c-dev protobuf-c-compiler libonnx-testdata libmicrohttpd-dev libcurl4-openssl-dev libreadline-dev"
# prometheus (promtool and the server) for tests/cli/test_monitor.sh only; it skips without it
PKGS="$PKGS prometheus"
# the sqlite3 command, for the history and monitor tests that edit a database by hand
PKGS="$PKGS sqlite3"
# zlib: gzip answers of the metrics endpoint; libcrypt (libxcrypt: bcrypt) and libyaml: its web
# config (basic auth users, TLS; exporter-toolkit's YAML format)
PKGS="$PKGS zlib1g-dev libcrypt-dev libyaml-dev"
# curl and openssl, for tests/cli/test_monitor_http.sh only (keep-alive, gzip, a self-signed
# certificate, https); it skips those checks without them
PKGS="$PKGS curl openssl"
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
