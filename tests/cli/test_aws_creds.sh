# The CloudWatch exporter's credentials: the AWS chain in its order (environment, shared files,
# web identity, container, instance metadata), each remote source against tests/tools/awsstub, a
# loopback stand-in that checks the documented request shapes (IMDSv2 token and TTL headers,
# STS AssumeRoleWithWebIdentity parameters, the container Authorization header) and also
# records what CloudWatch requests are signed with; refresh before expiry; bitnet validate and
# bitnet monitor give the same verdict. Only 127.0.0.1 is ever asked.
. "$(dirname "$0")/lib.sh"
: "${AWSSTUB:=$(dirname "$JSONGET")/awsstub}"
STUB=""
cleanup() {
    [ -n "$STUB" ] && kill "$STUB" 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT
unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN AWS_PROFILE AWS_CONFIG_FILE \
    AWS_SHARED_CREDENTIALS_FILE AWS_WEB_IDENTITY_TOKEN_FILE AWS_ROLE_ARN AWS_ROLE_SESSION_NAME \
    AWS_CONTAINER_CREDENTIALS_RELATIVE_URI AWS_CONTAINER_CREDENTIALS_FULL_URI \
    AWS_CONTAINER_AUTHORIZATION_TOKEN AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE AWS_ENDPOINT_URL \
    AWS_ENDPOINT_URL_STS AWS_EC2_METADATA_SERVICE_ENDPOINT AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE \
    DD_API_KEY BITNET_MONITOR_LISTEN 2>/dev/null
export HOME="$TMP/home" BITNET_HISTORY_DB="$TMP/history.db" AWS_REGION=eu-west-1
mkdir -p "$HOME/.aws"
printf '{"monitor": {"listen": "127.0.0.1:%s"}, "exporters": {"cloudwatch": {"enabled": true}}}\n' \
    $((20000 + $$ % 20000)) >"$TMP/cw.json"
export BITNET_CONFIG="$TMP/cw.json"
printf 'web-identity-jwt' >"$TMP/jwt"
printf 'container-secret\n' >"$TMP/auth"

# stub EXPIRES: starts the stand-in (log $TMP/stub.jsonl); P is its port
stub() {
    [ -n "$STUB" ] && kill "$STUB" 2>/dev/null && wait "$STUB" 2>/dev/null
    rm -f "$TMP/port" "$TMP/stub.jsonl"
    "$AWSSTUB" --port-file "$TMP/port" --out "$TMP/stub.jsonl" --token "${TOKEN:-web-identity-jwt}" \
        --expires "$1" --timeout 120 &
    STUB=$!
    i=0
    while [ ! -s "$TMP/port" ] && [ "$i" -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
    P=$(cat "$TMP/port" 2>/dev/null)
}
# once VAR=VALUE...: bitnet monitor --once sending to the stand-in's CloudWatch
once() {
    env AWS_EC2_METADATA_DISABLED=false "$@" "$BITNET" monitor --once --no-listen -q \
        --cloudwatch-endpoint "http://127.0.0.1:$P" >/dev/null 2>"$TMP/err"
}
# signed KEY WHAT: the stand-in's CloudWatch saw a request signed with KEY
signed() {
    if grep '"route":"cloudwatch"' "$TMP/stub.jsonl" | grep -q "\"key\":\"$1\""; then ok "$2"; else
        bad "$2: $(cat "$TMP/err") $(grep -c . "$TMP/stub.jsonl") requests"
        sed 's/^/       /' "$TMP/stub.jsonl" | tail -4
    fi
}
routes() { grep -o '"route":"[a-z-]*"' "$TMP/stub.jsonl" | cut -d'"' -f4 | tr '\n' ' '; }
IMDS="AWS_EC2_METADATA_SERVICE_ENDPOINT=http://127.0.0.1"

stub 3600
[ -n "$P" ] && ok "the stand-in listens on 127.0.0.1:$P" || bad "the stand-in did not start"

# ---- 5. instance metadata, IMDSv2 ----------------------------------------------------------
once "$IMDS:$P" && ok "instance metadata: monitor --once" || bad "imds: $(cat "$TMP/err")"
[ "$(routes)" = "imds-token imds-role imds-creds cloudwatch " ] \
    && ok "IMDSv2: PUT token (TTL header), GET role, GET credentials, each with the token" \
    || bad "imds routes: $(routes) $(grep '"ok":false' "$TMP/stub.jsonl")"
signed ASIAIMDS0001 "CloudWatch is signed with the instance role's key"
grep '"route":"cloudwatch"' "$TMP/stub.jsonl" | grep -q '"token":"session-ASIAIMDS0001"' \
    && ok "and sends its session token (X-Amz-Security-Token)" || bad "no session token"
expect_exit 1 "AWS_EC2_METADATA_DISABLED=true and nothing else" -- \
    env AWS_EC2_METADATA_DISABLED=true "$IMDS:$P" "$BITNET" monitor --once --no-listen -q
expect_grep "no AWS credentials: none in the environment" "$TMP/err" "the error lists the chain"
expect_one_line_err "no credentials"

# ---- 4. container -----------------------------------------------------------------------
TOKEN=container-secret
stub 3600
TOKEN=
once "$IMDS:$P" AWS_CONTAINER_CREDENTIALS_FULL_URI="http://127.0.0.1:$P/container/creds" \
    AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE="$TMP/auth" && ok "container: monitor --once" \
    || bad "container: $(cat "$TMP/err")"
[ "$(routes)" = "container cloudwatch " ] && ok "container comes before instance metadata" \
    || bad "container routes: $(routes)"
signed ASIACONT0001 "signed with the container's key (Authorization from the token file)"
once AWS_CONTAINER_CREDENTIALS_FULL_URI="http://127.0.0.1:$P/container/creds" \
    AWS_CONTAINER_AUTHORIZATION_TOKEN=container-secret && ok "AWS_CONTAINER_AUTHORIZATION_TOKEN" \
    || bad "container token: $(cat "$TMP/err")"
expect_exit 1 "container: a wrong Authorization" -- env AWS_EC2_METADATA_DISABLED=false \
    AWS_CONTAINER_CREDENTIALS_FULL_URI="http://127.0.0.1:$P/container/creds" \
    AWS_CONTAINER_AUTHORIZATION_TOKEN=wrong "$BITNET" monitor --once --no-listen -q
expect_grep "container.*HTTP 401" "$TMP/err" "the container's refusal is named"
n=$(grep -c . "$TMP/stub.jsonl")
expect_exit 1 "container: plain http beyond loopback is refused" -- env \
    AWS_CONTAINER_CREDENTIALS_FULL_URI=http://10.11.12.13/creds "$BITNET" monitor --once --no-listen -q
expect_grep "plain http is allowed only to loopback" "$TMP/err" "the rule is named"
[ "$(grep -c . "$TMP/stub.jsonl")" = "$n" ] && ok "and nothing was asked" || bad "a request was made"

# ---- 3. web identity (STS AssumeRoleWithWebIdentity) ---------------------------------------
stub 3600
once "$IMDS:$P" AWS_CONTAINER_CREDENTIALS_FULL_URI="http://127.0.0.1:$P/container/creds" \
    AWS_WEB_IDENTITY_TOKEN_FILE="$TMP/jwt" AWS_ROLE_ARN=arn:aws:iam::123456789012:role/bitnet \
    AWS_ENDPOINT_URL_STS="http://127.0.0.1:$P" && ok "web identity: monitor --once" \
    || bad "web identity: $(cat "$TMP/err")"
[ "$(routes)" = "sts cloudwatch " ] && ok "web identity comes before container and instance" \
    || bad "sts routes: $(routes)"
grep -q '"role":"arn:aws:iam::123456789012:role/bitnet"' "$TMP/stub.jsonl" \
    && ok "STS: Action, Version, RoleArn, RoleSessionName, WebIdentityToken as documented" \
    || bad "sts request: $(head -1 "$TMP/stub.jsonl")"
signed ASIASTS0001 "signed with the role's key"
grep '"route":"cloudwatch"' "$TMP/stub.jsonl" | grep -q '"token":"session-ASIASTS0001&x"' \
    && ok "the session token, XML entities decoded" || bad "sts session token"
once AWS_WEB_IDENTITY_TOKEN_FILE="$TMP/jwt" AWS_ROLE_ARN=arn:aws:iam::123456789012:role/bitnet \
    AWS_ENDPOINT_URL="http://127.0.0.1:$P" && ok "AWS_ENDPOINT_URL serves when no _STS one" \
    || bad "AWS_ENDPOINT_URL: $(cat "$TMP/err")"
printf 'not-the-token' >"$TMP/badjwt"
expect_exit 1 "web identity: STS refuses the token" -- env AWS_WEB_IDENTITY_TOKEN_FILE="$TMP/badjwt" \
    AWS_ROLE_ARN=arn:aws:iam::1:role/r AWS_ENDPOINT_URL_STS="http://127.0.0.1:$P" \
    "$BITNET" monitor --once --no-listen -q
expect_grep "web identity.*InvalidIdentityToken" "$TMP/err" "STS's error code is named"
expect_exit 1 "web identity without AWS_ROLE_ARN" -- env AWS_WEB_IDENTITY_TOKEN_FILE="$TMP/jwt" \
    "$BITNET" monitor --once --no-listen -q
expect_grep "no role (AWS_ROLE_ARN" "$TMP/err" "the missing role is named"

# ---- 2. shared files ------------------------------------------------------------------------
printf '[default]\naws_access_key_id = AKIDFILE\naws_secret_access_key = s\n[ops]\naws_access_key_id=AKIDOPS\naws_secret_access_key=s2\naws_session_token=t2\n' \
    >"$HOME/.aws/credentials"
stub 3600
once "$IMDS:$P" AWS_WEB_IDENTITY_TOKEN_FILE="$TMP/jwt" AWS_ROLE_ARN=arn:aws:iam::1:role/r \
    AWS_ENDPOINT_URL_STS="http://127.0.0.1:$P" && ok "shared credentials file" || bad "file: $(cat "$TMP/err")"
[ "$(routes)" = "cloudwatch " ] && ok "the shared files come before web identity" \
    || bad "file routes: $(routes)"
signed AKIDFILE "signed with the default profile's key"
once AWS_PROFILE=ops && signed AKIDOPS "AWS_PROFILE picks the profile"
mv "$HOME/.aws/credentials" "$TMP/creds"
once AWS_SHARED_CREDENTIALS_FILE="$TMP/creds" AWS_PROFILE=ops && signed AKIDOPS "AWS_SHARED_CREDENTIALS_FILE"
printf '[profile cfg]\nregion = eu-west-1\naws_access_key_id = AKIDCONF\naws_secret_access_key = s3\n' \
    >"$TMP/config"
once AWS_CONFIG_FILE="$TMP/config" AWS_PROFILE=cfg && signed AKIDCONF "keys in AWS_CONFIG_FILE's [profile NAME]"
printf '[profile wi]\nrole_arn = arn:aws:iam::1:role/fromfile\nweb_identity_token_file = %s\n' \
    "$TMP/jwt" >"$TMP/config"
once AWS_CONFIG_FILE="$TMP/config" AWS_PROFILE=wi AWS_ENDPOINT_URL_STS="http://127.0.0.1:$P" \
    && grep -q '"role":"arn:aws:iam::1:role/fromfile"' "$TMP/stub.jsonl" \
    && ok "a profile's role_arn and web_identity_token_file" || bad "profile web identity: $(cat "$TMP/err")"
expect_exit 1 "AWS_PROFILE that no file has" -- env AWS_PROFILE=nosuch "$BITNET" monitor --once --no-listen -q
expect_grep "profile nosuch (AWS_PROFILE) is in neither" "$TMP/err" "the missing profile is named"
printf '[profile p]\ncredential_process = /bin/false\n' >"$TMP/config"
expect_exit 1 "credential_process" -- env AWS_CONFIG_FILE="$TMP/config" AWS_PROFILE=p \
    "$BITNET" monitor --once --no-listen -q
expect_grep "uses credential_process, which bitnet does not support" "$TMP/err" "unsupported, said so"

# ---- 1. environment -------------------------------------------------------------------------
cp "$TMP/creds" "$HOME/.aws/credentials"
stub 3600
once "$IMDS:$P" AWS_ACCESS_KEY_ID=AKIDENV AWS_SECRET_ACCESS_KEY=e && ok "environment" \
    || bad "env: $(cat "$TMP/err")"
[ "$(routes)" = "cloudwatch " ] && signed AKIDENV "the environment comes first" || bad "env routes: $(routes)"
expect_exit 1 "only AWS_ACCESS_KEY_ID" -- env AWS_ACCESS_KEY_ID=x "$BITNET" monitor --once --no-listen -q
expect_grep "only one of AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY" "$TMP/err" "half a key pair is named"
rm "$HOME/.aws/credentials"

# ---- refresh before expiry --------------------------------------------------------------------
# credentials that expire within 5 minutes are fetched again before the next request; ones that
# do not are fetched once
for exp in 60 3600; do
    stub "$exp"
    env AWS_EC2_METADATA_DISABLED=false "$IMDS:$P" "$BITNET" monitor --no-listen -q --interval 0.3 \
        --duration 2 --cloudwatch-endpoint "http://127.0.0.1:$P" >/dev/null 2>"$TMP/err"
    sends=$(grep -c '"route":"cloudwatch"' "$TMP/stub.jsonl")
    fetches=$(grep -c '"route":"imds-creds"' "$TMP/stub.jsonl")
    keys=$(grep '"route":"cloudwatch"' "$TMP/stub.jsonl" | grep -o '"key":"[A-Z0-9]*"' | sort -u | wc -l)
    if [ "$exp" = 60 ]; then
        [ "$sends" -ge 2 ] && [ "$fetches" -eq $((sends + 1)) ] && [ "$keys" -eq "$sends" ] \
            && ok "expiring in 60 s: fetched again before each of $sends requests" \
            || bad "refresh: $sends sends, $fetches fetches, $keys keys"
    else
        [ "$sends" -ge 1 ] && [ "$fetches" -eq 1 ] && [ "$keys" -eq 1 ] \
            && ok "expiring in an hour: fetched once for $sends requests" \
            || bad "no refresh: $sends sends, $fetches fetches, $keys keys"
    fi
done

# a refresh that fails leaves the old credentials in use until they expire: the stand-in stops
# answering while CloudWatch (tests/tools/httprec) still takes requests
: "${HTTPREC:=$(dirname "$JSONGET")/httprec}"
stub 120
rm -f "$TMP/cwport"
"$HTTPREC" --port-file "$TMP/cwport" --out "$TMP/cw.jsonl" --timeout 60 &
REC=$!
i=0
while [ ! -s "$TMP/cwport" ] && [ "$i" -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
env AWS_EC2_METADATA_DISABLED=false "$IMDS:$P" "$BITNET" monitor --no-listen -q --interval 0.3 \
    --duration 3 --cloudwatch-endpoint "http://127.0.0.1:$(cat "$TMP/cwport")" >/dev/null 2>&1 &
MON=$!
i=0
while [ "$(grep -c . "$TMP/cw.jsonl" 2>/dev/null)" -lt 1 ] && [ "$i" -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
kill "$STUB"; wait "$STUB" 2>/dev/null; STUB=""
before=$(grep -c . "$TMP/cw.jsonl")
wait "$MON"
kill "$REC" 2>/dev/null
after=$(grep -c 'AWS4-HMAC-SHA256 Credential=ASIAIMDS' "$TMP/cw.jsonl")
[ "$before" -ge 1 ] && [ "$after" -gt "$before" ] \
    && ok "a failed refresh: the unexpired credentials still sign ($before, then $after requests)" \
    || bad "failed refresh: $before requests before the stand-in stopped, $after in all"

# ---- validate gives the monitor's verdict -------------------------------------------------------
stub 3600
expect_exit 0 "validate: instance metadata answers" -- env AWS_EC2_METADATA_DISABLED=false "$IMDS:$P" \
    "$BITNET" validate "$TMP/cw.json"
expect_exit 1 "validate: STS refuses" -- env AWS_WEB_IDENTITY_TOKEN_FILE="$TMP/badjwt" \
    AWS_ROLE_ARN=arn:aws:iam::1:role/r AWS_ENDPOINT_URL_STS="http://127.0.0.1:$P" \
    "$BITNET" validate "$TMP/cw.json"
expect_grep "exporters.cloudwatch: .*InvalidIdentityToken" "$TMP/out" "validate names STS's error"
expect_exit 0 "validate: web identity that STS takes" -- env AWS_WEB_IDENTITY_TOKEN_FILE="$TMP/jwt" \
    AWS_ROLE_ARN=arn:aws:iam::1:role/r AWS_ENDPOINT_URL_STS="http://127.0.0.1:$P" \
    "$BITNET" validate "$TMP/cw.json"
kill "$STUB" 2>/dev/null
expect_exit 1 "validate: instance metadata that does not answer" -- env AWS_EC2_METADATA_DISABLED=false \
    "$IMDS:$P" "$BITNET" validate "$TMP/cw.json"
expect_exit 1 "monitor: the same" -- env AWS_EC2_METADATA_DISABLED=false "$IMDS:$P" \
    "$BITNET" monitor --once --no-listen -q

finish test_aws_creds
