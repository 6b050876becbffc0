#!/bin/sh
# deploy/: the Dockerfile and the Kubernetes manifests, checked without a network or a cluster.
# The Dockerfile (what a linter would say, done here): Debian 12 stages, a multi-stage build,
# the final USER not root, a HEALTHCHECK on /health, apt lists removed, no ADD of a URL, no
# :latest, the COPY sources present, the model it serves installed by make install, and the
# runtime packages covering every library the binary links (dpkg -S; SKIP without dpkg).
# The manifests: yamllint (SKIP without it), kubernetes-validate --strict against the
# Kubernetes 1.30 schemas (SKIP without it), the same on the kustomize builds of the base and
# of the local overlay (SKIP without kubectl or kustomize), tests/cli/deploy_check.py on both
# (probes, securityContext, Secret references, selectors; SKIP without PyYAML), the
# ConfigMap's config read back by bitnet config get, and bitnet serve started with the
# Deployment's arguments and environment (loopback, the bundled model, a Redis that does not
# answer) answering /health. A broken copy of each is refused.
. "$(dirname "$0")/lib.sh"
echo "test_deploy.sh"
B=$BITNET
DF=deploy/Dockerfile
K=deploy/kubernetes
KVER=1.30.0

# dockerfile_check FILE: one line per problem on stdout; 1 when there is one
dockerfile_check() {
    awk -v root="$(pwd)" '
        function problem(m) { print m; bad = 1 }
        /^[ \t]*#/ { next }
        { line = $0; while (line ~ /\\$/ && (getline nxt) > 0) line = substr(line, 1, length(line) - 1) " " nxt }
        toupper($1) == "FROM" {
            froms++; user = ""; health = ""
            if ($2 !~ /^debian:(12|bookworm)(-slim)?$/) problem("FROM " $2 ": not Debian 12")
        }
        toupper($1) == "USER" { user = $2 }
        toupper($1) == "HEALTHCHECK" { health = line }
        toupper($1) == "ADD" && line ~ /https?:\/\// { problem("ADD of a URL: " line) }
        line ~ /:latest([ \t"]|$)/ { problem("a :latest tag: " line) }
        toupper($1) == "RUN" && line ~ /apt-get install/ {
            if (line !~ /--no-install-recommends/) problem("apt-get install without --no-install-recommends")
            if (line !~ /rm -rf \/var\/lib\/apt\/lists/) problem("apt-get install keeps /var/lib/apt/lists")
        }
        toupper($1) == "RUN" && line ~ /deps\.sh/ && line !~ /rm -rf \/var\/lib\/apt\/lists/ {
            problem("deps.sh keeps /var/lib/apt/lists")
        }
        toupper($1) == "COPY" && line !~ /--from=/ {
            for (i = 2; i < NF; i++) {
                f = $i
                if (f !~ /^-/ && system("test -e \"" root "/" f "\"") != 0) problem("COPY of a missing " f)
            }
        }
        END {
            if (froms < 2) problem("not a multi-stage build (" froms + 0 " FROM)")
            split(user, u, ":")
            if (user == "" || u[1] == "root" || u[1] == "0") problem("the final stage runs as root (USER \"" user "\")")
            if (health !~ /\/health/) problem("no HEALTHCHECK on /health in the final stage")
            exit bad
        }' "$1"
}

if dockerfile_check "$DF" >"$TMP/df.txt"; then ok "Dockerfile: Debian 12 stages, USER not root, HEALTHCHECK /health, apt lists removed"
else bad "Dockerfile: $(cat "$TMP/df.txt")"; fi
sed -e 's/^USER .*/USER root/' "$DF" >"$TMP/Dockerfile.root"
dockerfile_check "$TMP/Dockerfile.root" >"$TMP/df.txt" && bad "USER root passes" ||
    ok "a Dockerfile with USER root is refused: $(head -1 "$TMP/df.txt")"
grep -v '^HEALTHCHECK\|^    CMD \["curl"' "$DF" >"$TMP/Dockerfile.nohc"
dockerfile_check "$TMP/Dockerfile.nohc" >"$TMP/df.txt" && bad "no HEALTHCHECK passes" ||
    ok "a Dockerfile without HEALTHCHECK is refused"
model=$(sed -n 's|.*"\(/usr/local/share/bitnet/models/[^"]*\)".*|\1|p' "$DF" | head -1)
[ -n "$model" ] && [ -f "assets/models/$(basename "$model")" ] &&
    grep -q 'share/bitnet/models' Makefile && ok "the image serves the bundled $(basename "$model")" ||
    bad "the model '$model' of the Dockerfile is not installed by make install"

# the runtime stage installs the package of every library the binary needs
if command -v dpkg >/dev/null 2>&1 && command -v ldd >/dev/null 2>&1; then
    pkgs=$(awk '/^FROM/ {s++} s >= 2 && /apt-get install/, /rm -rf/' "$DF" | tr ' \\' '\n\n' |
        grep '^[a-z0-9][a-z0-9.+-]*$' | grep -v '^apt-get$\|^install$\|^rm$\|^-' | sort -u)
    missing=""
    for lib in $(readelf -d "$B" | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p'); do
        path=$(ldd "$B" | awk -v l="$lib" '$1 == l { print $3 }')
        [ -n "$path" ] || continue
        pkg=""
        for f in "$path" "$(readlink -f "$path")"; do # merged /usr: dpkg may know the other name
            for g in "$f" "${f#/usr}" "/usr$f"; do
                [ -n "$pkg" ] || pkg=$(dpkg -S "$g" 2>/dev/null | head -1 | cut -d: -f1)
            done
        done
        case $lib in libasan.so* | libubsan.so* | libtsan.so*) continue ;; esac # make sanitize
        case $pkg in libc6) continue ;; "") pkg=unknown ;; esac
        found=0
        for p in $pkgs; do case $pkg in "$p"*) found=1 ;; esac; done
        [ $found = 1 ] || missing="$missing $lib($pkg)"
    done
    [ -z "$missing" ] && ok "the runtime stage installs the package of every library bitnet links" ||
        bad "the runtime stage lacks:$missing"
else
    echo "  SKIP the runtime libraries: no dpkg or ldd"
fi

# ---- the manifests ---------------------------------------------------------------------------
if command -v yamllint >/dev/null 2>&1; then
    yamllint -c deploy/.yamllint deploy/ >"$TMP/yl.txt" 2>&1 && ok "yamllint deploy/" ||
        bad "yamllint: $(head -5 "$TMP/yl.txt")"
    printf 'a: 1\na: 2\n' >"$TMP/dup.yaml"
    yamllint -c deploy/.yamllint "$TMP/dup.yaml" >/dev/null 2>&1 && bad "yamllint passes a duplicate key" ||
        ok "yamllint refuses a duplicate key"
else
    echo "  SKIP yamllint: not installed (Debian package yamllint; scripts/deps.sh)"
fi
RES=$(ls $K/base/*.yaml $K/overlays/local/*.yaml | grep -v kustomization.yaml)
KV=""
command -v kubernetes-validate >/dev/null 2>&1 && KV=kubernetes-validate
if [ -n "$KV" ]; then
    # shellcheck disable=SC2086
    $KV -k $KVER --strict --quiet $RES >"$TMP/kv.txt" 2>&1 &&
        ok "kubernetes-validate --strict (Kubernetes $KVER): $(echo $RES | wc -w) files" ||
        bad "kubernetes-validate: $(head -5 "$TMP/kv.txt")"
    sed 's/readOnlyRootFilesystem: true/readOnlyRootFilesystem: "yes"/' $K/base/deployment.yaml >"$TMP/bad.yaml"
    $KV -k $KVER --strict --quiet "$TMP/bad.yaml" >/dev/null 2>&1 &&
        bad "kubernetes-validate passes a string for a boolean" || ok "kubernetes-validate refuses a wrong type"
else
    echo "  SKIP kubernetes-validate: not installed (pip install kubernetes-validate; scripts/deps.sh)"
fi

HAVE_YAML=0
python3 -c 'import yaml' 2>/dev/null && HAVE_YAML=1
if [ $HAVE_YAML = 1 ]; then
    # shellcheck disable=SC2086
    python3 tests/cli/deploy_check.py $K/base/*.yaml >"$TMP/dc.txt" 2>&1 &&
        ok "deploy_check.py on the base: $(wc -l <"$TMP/dc.txt") checks" || bad "deploy_check base: $(tail -1 "$TMP/dc.txt")"
    cp $K/base/*.yaml "$TMP/" && sed -i 's/readOnlyRootFilesystem: true/readOnlyRootFilesystem: false/' "$TMP/deployment.yaml"
    python3 tests/cli/deploy_check.py "$TMP/deployment.yaml" "$TMP/service.yaml" "$TMP/hpa.yaml" \
        "$TMP/pdb.yaml" "$TMP/configmap.yaml" "$TMP/networkpolicy.yaml" "$TMP/pvc.yaml" >"$TMP/dc.txt" 2>&1 &&
        bad "deploy_check passes a writable root" || ok "deploy_check refuses: $(tail -1 "$TMP/dc.txt")"
    # the ConfigMap's config as the binary reads it
    python3 -c 'import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))["data"]["config.json"])' \
        $K/base/configmap.yaml >"$TMP/config.json"
    v=$(BITNET_CONFIG="$TMP/config.json" "$B" config get tiers.team.requests_per_min 2>&1)
    [ "$v" = 600 ] && ok "bitnet reads the ConfigMap's config (tiers.team.requests_per_min $v)" ||
        bad "config of the ConfigMap: '$v'"
    # the Deployment's arguments and environment as this binary takes them: it serves /health
    python3 - $K/base/deployment.yaml >"$TMP/args" <<'EOF'
import sys, yaml
d = yaml.safe_load(open(sys.argv[1]))
c = d["spec"]["template"]["spec"]["containers"][0]
env = {e["name"]: e.get("value") for e in c["env"]}
sub = {"$(BITNET_REDIS_URL)": "redis://127.0.0.1:1", "0.0.0.0:8080": "127.0.0.1:0",
       "/usr/local/share/bitnet/models/bitnet-tinystories.gguf": "assets/models/bitnet-tinystories.gguf"}
print("BITNET_THREADS=%s" % env["BITNET_THREADS"])
for a in c["args"]:
    print(sub.get(a, a))
EOF
    thr=$(sed -n 's/^BITNET_THREADS=//p' "$TMP/args")
    # shellcheck disable=SC2046
    set -- $(sed '1,2d' "$TMP/args") # past BITNET_THREADS and serve
    BITNET_CONFIG="$TMP/config.json" BITNET_HISTORY_DB="$TMP/history.db" BITNET_THREADS=$thr \
        HOME="$TMP" start_server "$TMP/dep.log" "$@"
    h=$(curl -s -o /dev/null -w '%{http_code}' "$URL/health" 2>/dev/null || echo "no curl")
    [ "$h" = 200 ] && grep -q "does not answer" "$TMP/dep.log" &&
        ok "bitnet serve takes the Deployment's arguments ($*): /health 200" ||
        bad "the Deployment's arguments: /health '$h': $(cat "$TMP/dep.log")"
    kill -TERM "$SPID" 2>/dev/null
    wait "$SPID" 2>/dev/null
else
    echo "  SKIP deploy_check.py: no PyYAML (python3-yaml; kubernetes-validate brings it)"
fi

KZ=""
if command -v kubectl >/dev/null 2>&1 && kubectl kustomize --help >/dev/null 2>&1; then KZ="kubectl kustomize"
elif command -v kustomize >/dev/null 2>&1; then KZ="kustomize build"; fi
if [ -n "$KZ" ]; then
    for d in base overlays/local; do
        f="$TMP/build-$(basename $d).yaml"
        if ! $KZ "$K/$d" >"$f" 2>"$TMP/kz.err"; then
            bad "$KZ $d: $(head -3 "$TMP/kz.err")"
            continue
        fi
        ok "$KZ $K/$d: $(grep -c '^kind:' "$f") resources"
        if [ -n "$KV" ]; then
            $KV -k $KVER --strict --quiet "$f" >"$TMP/kv.txt" 2>&1 && ok "kubernetes-validate the build of $d" ||
                bad "kubernetes-validate build $d: $(head -5 "$TMP/kv.txt")"
        fi
        if [ $HAVE_YAML = 1 ]; then
            python3 tests/cli/deploy_check.py "$f" >"$TMP/dc.txt" 2>&1 && ok "deploy_check.py on the build of $d" ||
                bad "deploy_check build $d: $(tail -1 "$TMP/dc.txt")"
        fi
    done
    grep -q 'name: bitnet-secrets-' "$TMP/build-local.yaml" && grep -q 'newTag\|image: bitnet:dev' "$TMP/build-local.yaml" &&
        ok "the local overlay: its Secret generated and referenced, image bitnet:dev" ||
        bad "local overlay build: no generated Secret or image"
else
    echo "  SKIP the kustomize builds: no kubectl or kustomize"
fi
finish test_deploy.sh
