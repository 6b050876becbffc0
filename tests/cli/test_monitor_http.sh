# bitnet monitor's scrape endpoint under slow clients and with HTTP features: a request has a
# bounded time (not an idle timeout that each byte restarts), connections per client address
# are limited, a scrape is answered while 200 slow connections are open (tests/tools/slowclient
# opens them on 127.0.0.2.. and stops by itself); keep-alive, gzip, Allow on 405, /-/ready;
# TLS and basic auth from a web config (a self-signed certificate made here with openssl or
# certtool). Everything on loopback; the checks that need curl or openssl SKIP without them.
. "$(dirname "$0")/lib.sh"
: "${HTTPREC:=$(dirname "$JSONGET")/httprec}"
: "${SLOWCLIENT:=$(dirname "$JSONGET")/slowclient}"
export BITNET_CONFIG="$TMP/config.json" BITNET_HISTORY_DB="$TMP/history.db" HOME="$TMP"
unset BITNET_MONITOR_LISTEN 2>/dev/null
echo '{}' >"$BITNET_CONFIG"
skip() { echo "  SKIP $1"; }
CURL=$(command -v curl || true)

ms() { date +%s%N | cut -c1-13; }

# scrape_amid OUT WHAT SLOWCLIENT-ARGS...: opens the slow connections (200, a header line every
# 0.5 s; they stop by themselves), scrapes /metrics while they are open (within 3 s), waits
# for them; their summary line goes to OUT
scrape_amid() {
    out=$1 what=$2
    shift 2
    rm -f "$TMP/ready"
    "$SLOWCLIENT" --port "$MPORT" --conns 200 --every-ms 500 --ready "$TMP/ready" "$@" >"$out" 2>&1 &
    SLOW=$!
    PIDS="$PIDS $SLOW"
    wait_grep 200 "$TMP/ready" 100
    t0=$(ms)
    "$HTTPREC" --fetch "$MPORT" /metrics >"$TMP/scrape" 2>&1 && grep -q "^bitnet_build_info" "$TMP/scrape" &&
        [ $(($(ms) - t0)) -lt 3000 ] && ok "a scrape is answered $what" || bad "no scrape $what ($(($(ms) - t0)) ms)"
    wait "$SLOW"
}

# ---- usage ----------------------------------------------------------------------------------
expect_exit 2 "--http-timeout bad" -- "$BITNET" monitor --http-timeout 0
expect_exit 2 "--http-max-per-client 0" -- "$BITNET" monitor --http-max-per-client 0
expect_exit 0 "monitor --help" -- "$BITNET" monitor --help
expect_grep "--http-timeout" "$TMP/out" "help names --http-timeout"
expect_grep "--web-config" "$TMP/out" "help names --web-config"

# ---- slow clients ---------------------------------------------------------------------------
start_monitor "$TMP/a.log" --interval 1 --listen 127.0.0.1:0 --http-timeout 2 --http-max-per-client 20
if [ -n "$MPORT" ]; then
    # 200 connections from 10 addresses, never finishing a request
    scrape_amid "$TMP/slow.out" "while 200 slow connections are open" --from 127.0.0.2 --addrs 10 \
        --for-ms 5000
    cat "$TMP/slow.out"
    # each was closed once its 2 s were up, although it sent a line every 0.5 s
    closed=$(sed -n 's/.*closed=\([0-9]*\).*/\1/p' "$TMP/slow.out")
    last=$(sed -n 's/.*last_close_ms=\([0-9-]*\).*/\1/p' "$TMP/slow.out")
    [ "$closed" = 200 ] && [ "$last" -ge 1500 ] && [ "$last" -le 4500 ] &&
        ok "slow requests are cut after --http-timeout, not kept alive by each byte" ||
        bad "slow requests: closed=$closed last_close_ms=$last"
    # one address holds at most --http-max-per-client connections: the ones waiting longest make
    # room for the newest
    "$SLOWCLIENT" --port "$MPORT" --conns 30 --from 127.0.0.77 --addrs 1 --every-ms 500 \
        --for-ms 1000 >"$TMP/ip.out" 2>&1
    grep -q "closed=10 open=20 " "$TMP/ip.out" &&
        ok "30 connections from one address: 20 (the limit) stay, the 10 oldest are closed" ||
        bad "per-address limit: $(cat "$TMP/ip.out")"
    # 200 slow connections from the scraper's own address (loopback): the scrape still gets in
    scrape_amid "$TMP/same.out" "from the address of 200 slow connections" --from 127.0.0.1 \
        --addrs 1 --for-ms 3000
    "$HTTPREC" --fetch "$MPORT" /-/healthy >/dev/null && ok "still healthy afterwards" || bad "healthy afterwards"
    n=$(grep -c "http:" "$TMP/a.log")
    [ "$n" -le 8 ] && ok "slow clients do not flood the log ($n lines)" || bad "the log has $n http lines"
    stop_monitor
else
    bad "the endpoint did not start: $(head -3 "$TMP/a.log")"
fi

# ---- HTTP: 405 with Allow, /-/ready, keep-alive, gzip ------------------------------------------
start_monitor "$TMP/b.log" --interval 1 --listen 127.0.0.1:0
if [ -n "$MPORT" ]; then
    "$HTTPREC" --fetch "$MPORT" /metrics POST | tr -d '\r' >"$TMP/h"
    grep -q " 405 " "$TMP/h" && grep -qi "^Allow: GET, HEAD$" "$TMP/h" && ok "405 names the methods in Allow" ||
        bad "405: $(head -5 "$TMP/h")"
    i=0 # the first collection runs at the start: ready within 5 s
    while [ "$i" -lt 50 ] && ! "$HTTPREC" --fetch "$MPORT" /-/ready >/dev/null 2>&1; do
        sleep 0.1
        i=$((i + 1))
    done
    "$HTTPREC" --fetch "$MPORT" /-/ready | tr -d '\r' >"$TMP/h"
    grep -q " 200 " "$TMP/h" && grep -q "^ready$" "$TMP/h" && ok "/-/ready after the first collection" ||
        bad "/-/ready: $(head -3 "$TMP/h")"
    if [ -n "$CURL" ]; then
        "$CURL" -sv "http://127.0.0.1:$MPORT/metrics" "http://127.0.0.1:$MPORT/-/healthy" -o /dev/null \
            -o /dev/null 2>"$TMP/ka"
        grep -qi "re-using existing connection" "$TMP/ka" && ! grep -qi "< Connection: close" "$TMP/ka" &&
            ok "keep-alive: the second request reuses the connection" || bad "keep-alive: $(grep -i connection "$TMP/ka" | head -3)"
        "$CURL" -s -H "Accept-Encoding: gzip" -D "$TMP/gz.h" "http://127.0.0.1:$MPORT/metrics" -o "$TMP/gz"
        tr -d '\r' <"$TMP/gz.h" >"$TMP/gz.hh"
        grep -qi "^Content-Encoding: gzip$" "$TMP/gz.hh" && gzip -dc "$TMP/gz" | grep -q "^bitnet_build_info" &&
            ok "gzip when asked (Accept-Encoding: gzip)" || bad "gzip: $(head -8 "$TMP/gz.hh")"
        expect_grep "^Vary: Accept-Encoding" "$TMP/gz.hh" "gzip: Vary: Accept-Encoding"
        "$CURL" -s -H "Accept-Encoding: gzip;q=0, identity" -D "$TMP/id.h" "http://127.0.0.1:$MPORT/metrics" -o "$TMP/id"
        ! grep -qi "^Content-Encoding" "$TMP/id.h" && grep -q "^bitnet_build_info" "$TMP/id" &&
            ok "no gzip when refused (gzip;q=0)" || bad "gzip;q=0 still compressed"
        for ae in "*" "deflate, x-gzip;q=0.5" "br;q=1, GZIP"; do
            "$CURL" -s -H "Accept-Encoding: $ae" -D "$TMP/ae.h" "http://127.0.0.1:$MPORT/metrics" -o /dev/null
            grep -qi "^Content-Encoding: gzip" "$TMP/ae.h" && ok "gzip for Accept-Encoding: $ae" ||
                bad "no gzip for Accept-Encoding: $ae"
        done
        "$CURL" -s -H "Accept-Encoding: deflate, br" -D "$TMP/ae.h" "http://127.0.0.1:$MPORT/metrics" -o /dev/null
        grep -qi "^Content-Encoding" "$TMP/ae.h" && bad "an encoding that was not asked for" ||
            ok "no gzip when only other encodings are asked for"
        "$CURL" -s -I "http://127.0.0.1:$MPORT/metrics" >"$TMP/head" && grep -q " 200 " "$TMP/head" &&
            ok "HEAD /metrics" || bad "HEAD /metrics: $(head -1 "$TMP/head")"
    else
        skip "keep-alive and gzip: curl absent"
    fi
    stop_monitor
else
    bad "the endpoint did not start: $(head -3 "$TMP/b.log")"
fi

# ---- the web config: refused with one line naming the problem ---------------------------------
W="$TMP/web"
mkdir -p "$W"
# bcrypt of "scrape-secret" ($2b$ as libxcrypt writes it, $2y$ as htpasswd -nB does), cost 5
H1='$2b$05$NK1wt1OncgZ/qSLhfVqJAOHisUarJ8CYENuYemlXD/CTwLnwcEzHi'
H2='$2y$05$abcdefghijklmnopqrstuuyiBEYE9gAbj4CopDfsmspBj3KMuRWOa'
bad_web() { # NAME PATTERN YAML (printf format): the YAML is refused, naming PATTERN
    printf "$3" >"$W/$1.yml"
    expect_exit 1 "web config: $1" -- "$BITNET" monitor --listen 127.0.0.1:0 --web-config "$W/$1.yml" --duration 1
    expect_grep "$2" "$TMP/err" "web config: $1: says why"
    expect_one_line_err "web config: $1"
}
bad_web not-yaml "not-yaml.yml:" 'basic_auth_users: [a, b\n'
bad_web client-auth "client_auth_type: not supported" \
    'tls_server_config:\n  client_auth_type: RequireAndVerifyClientCert\n  cert_file: c.pem\n'
bad_web plain-password "basic_auth_users.alice: expected a bcrypt hash" 'basic_auth_users:\n  alice: plain-text\n'
bad_web missing-cert "nope.pem" 'tls_server_config:\n  cert_file: nope.pem\n  key_file: nope.key\n'
bad_web twice "basic_auth_users: given twice" 'basic_auth_users:\n  a: x\nbasic_auth_users:\n  b: y\n'
bad_web user-twice "basic_auth_users.a: given twice" "basic_auth_users:\n  a: $H1\n  a: $H1\n"
bad_web http-server "http_server_config: not supported" 'http_server_config:\n  http2: false\n'
printf -- '-----BEGIN CERTIFICATE-----\n' >"$W/dummy.pem"
bad_web cert-only "needs both cert_file and key_file" "tls_server_config:\n  cert_file: $W/dummy.pem\n"
expect_exit 1 "web config: a missing file" -- "$BITNET" monitor --web-config "$W/none.yml" --duration 1
expect_grep "none.yml" "$TMP/err" "web config: the missing file is named"
# bitnet validate checks it with the monitor's own code
printf '{"monitor": {"web_config": "%s"}}\n' "$W/plain-password.yml" >"$TMP/v.json"
expect_exit 1 "validate: a bad web config" -- "$BITNET" validate "$TMP/v.json"
expect_grep "monitor.web_config: .*basic_auth_users.alice: expected a bcrypt hash" "$TMP/out" \
    "validate: the web config's problem is named"
expect_exit 0 "validate --help" -- "$BITNET" validate --help
expect_grep "monitor.web_config" "$TMP/out" "validate --help names the web config it checks"
sed -n '/^\.It Nm Ic validate /,/^\.It Nm Ic /p' man/bitnet.1 >"$TMP/man-validate"
expect_grep "^\.Cm monitor.web_config" "$TMP/man-validate" "bitnet(1)'s validate names the web config"

# ---- basic auth over plain HTTP, then TLS with basic auth ---------------------------------------
H3='$2b$13$abcdefghijklmnopqrstuugWBQLkiQFWBmFIc.pH1lbyotQr2hAnu' # cost 13
printf 'basic_auth_users:\n  prometheus: %s\n  alice: "%s"\n  ops: %s\n' "$H1" "$H2" "$H3" >"$W/auth.yml"
start_monitor "$TMP/c.log" --interval 1 --listen 127.0.0.1:0 --web-config "$W/auth.yml"
if [ -n "$MPORT" ]; then
    "$HTTPREC" --fetch "$MPORT" /metrics | tr -d '\r' >"$TMP/h"
    grep -q " 401 " "$TMP/h" && grep -q '^WWW-Authenticate: Basic realm="bitnet monitor"' "$TMP/h" &&
        ok "basic auth: 401 with a challenge without credentials" || bad "no 401: $(head -3 "$TMP/h")"
    if [ -n "$CURL" ]; then
        code() { "$CURL" -s -o /dev/null -w "%{http_code}" "$@"; }
        [ "$(code -u prometheus:scrape-secret "http://127.0.0.1:$MPORT/metrics")" = 200 ] &&
            ok "basic auth: the right password (\$2b\$)" || bad "basic auth: prometheus refused"
        [ "$(code -u alice:scrape-secret "http://127.0.0.1:$MPORT/-/healthy")" = 200 ] &&
            ok "basic auth: the right password (\$2y\$, htpasswd's)" || bad "basic auth: alice refused"
        [ "$(code -u alice:wrong "http://127.0.0.1:$MPORT/metrics")" = 401 ] &&
            ok "basic auth: a wrong password gets 401" || bad "basic auth: a wrong password passed"
        [ "$(code -u mallory:scrape-secret "http://127.0.0.1:$MPORT/metrics")" = 401 ] &&
            ok "basic auth: an unknown user gets 401" || bad "basic auth: an unknown user passed"
        # a flood of wrong passwords for a user with a costly hash (cost 13: about 0.4 s each)
        # from three addresses, 16 at once from each: past a budget of bcrypt time they are
        # refused unchecked, so the flood is over in a few seconds (48 checks would hold the
        # endpoint for about 20 s) and a scraper is answered meanwhile
        urls=""
        for i in $(seq 16); do urls="$urls http://127.0.0.1:$MPORT/metrics"; done
        FL=""
        f0=$(ms)
        for a in 5 7 8; do
            "$CURL" -s -Z --parallel-max 16 --interface "127.0.0.$a" -u ops:wrong $urls >/dev/null 2>&1 &
            FL="$FL $!"
        done
        sleep 0.3
        t0=$(ms)
        [ "$(code --interface 127.0.0.6 -u alice:scrape-secret "http://127.0.0.1:$MPORT/metrics")" = 200 ] &&
            [ $(($(ms) - t0)) -lt 5000 ] && ok "a scraper is answered amid a flood of wrong passwords ($(($(ms) - t0)) ms)" ||
            bad "a scraper waited $(($(ms) - t0)) ms behind a flood of wrong passwords"
        wait $FL
        [ $(($(ms) - f0)) -lt 8000 ] && ok "a flood of wrong passwords gets a budget of bcrypt, not the endpoint ($(($(ms) - f0)) ms)" ||
            bad "48 wrong passwords held the endpoint for $(($(ms) - f0)) ms"
        i=0 # the budget refills: the user of the costly hash gets in (10 s at most)
        while [ "$i" -lt 20 ] && [ "$(code -u ops:scrape-secret "http://127.0.0.1:$MPORT/-/healthy")" != 200 ]; do
            sleep 0.5
            i=$((i + 1))
        done
        [ "$i" -lt 20 ] && ok "basic auth: a costly hash still admits its user once the budget refills" ||
            bad "basic auth: ops refused for 10 s"
    else
        skip "basic auth with credentials: curl absent"
    fi
    stop_monitor
else
    bad "the endpoint with auth did not start: $(head -3 "$TMP/c.log")"
fi
# a self-signed certificate for 127.0.0.1, made here
cert=""
if command -v openssl >/dev/null 2>&1 &&
    openssl req -x509 -newkey rsa:2048 -nodes -keyout "$W/key.pem" -out "$W/cert.pem" -days 2 \
        -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 >/dev/null 2>&1; then
    cert=openssl
elif command -v certtool >/dev/null 2>&1; then
    printf 'cn = 127.0.0.1\nip_address = 127.0.0.1\nexpiration_days = 2\ntls_www_server\n' >"$W/cert.tmpl"
    certtool --generate-privkey --outfile "$W/key.pem" >/dev/null 2>&1 &&
        certtool --generate-self-signed --load-privkey "$W/key.pem" --template "$W/cert.tmpl" \
            --outfile "$W/cert.pem" >/dev/null 2>&1 && cert=certtool
fi
if [ -z "$cert" ] || [ -z "$CURL" ]; then
    skip "TLS: no openssl or certtool to make a certificate, or no curl"
else
    # relative names: relative to the web config's folder
    printf 'tls_server_config:\n  cert_file: cert.pem\n  key_file: %s\nbasic_auth_users:\n  prometheus: %s\n' \
        "$W/key.pem" "$H1" >"$W/tls.yml"
    start_monitor "$TMP/d.log" --interval 1 --listen 127.0.0.1:0 --web-config "$W/tls.yml"
    if [ -n "$MPORT" ]; then
        expect_grep "listening on https://" "$TMP/d.log" "TLS: the log says https"
        "$CURL" -s --cacert "$W/cert.pem" -u prometheus:scrape-secret "https://127.0.0.1:$MPORT/metrics" \
            >"$TMP/tls.prom" && grep -q "^bitnet_build_info" "$TMP/tls.prom" &&
            ok "TLS ($cert certificate): a scrape over https with the password" || bad "TLS scrape failed"
        [ "$("$CURL" -s --cacert "$W/cert.pem" -o /dev/null -w "%{http_code}" "https://127.0.0.1:$MPORT/metrics")" = 401 ] &&
            ok "TLS: 401 without credentials" || bad "TLS: no 401 without credentials"
        "$CURL" -s -m 3 -o /dev/null "http://127.0.0.1:$MPORT/metrics" && bad "TLS: plain HTTP answered" ||
            ok "TLS: plain HTTP gets no answer"
        "$CURL" -s -m 3 --tls-max 1.1 --cacert "$W/cert.pem" -o /dev/null "https://127.0.0.1:$MPORT/metrics" &&
            bad "TLS: TLS 1.1 accepted" || ok "TLS: 1.2 at least"
        stop_monitor
    else
        bad "the TLS endpoint did not start: $(head -3 "$TMP/d.log")"
    fi
fi
# listening beyond loopback without TLS is said
start_monitor "$TMP/e.log" --interval 1 --listen 0.0.0.0:0 --duration 2
expect_grep "warning: 0.0.0.0:0 is reachable beyond this host" "$TMP/e.log" "a warning for plain HTTP beyond loopback"
stop_monitor

finish test_monitor_http
