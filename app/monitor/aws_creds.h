/*
 * aws_creds.h - AWS credentials found the way the AWS SDKs find them (their "default credential
 * provider chain"), for the CloudWatch exporter. The first source that is configured is the one
 * used; when it fails, that is the error (the chain does not go on past a source that is set up):
 *
 *   1. environment     AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY (both), AWS_SESSION_TOKEN
 *   2. shared files    the profile AWS_PROFILE (else "default") in AWS_SHARED_CREDENTIALS_FILE
 *                      (~/.aws/credentials), then in AWS_CONFIG_FILE (~/.aws/config, section
 *                      "[profile NAME]"): its aws_access_key_id, aws_secret_access_key and
 *                      aws_session_token, or its role_arn with web_identity_token_file (-> 3)
 *   3. web identity    AWS_WEB_IDENTITY_TOKEN_FILE with AWS_ROLE_ARN (AWS_ROLE_SESSION_NAME):
 *                      STS AssumeRoleWithWebIdentity (unsigned, form-encoded POST) at
 *                      AWS_ENDPOINT_URL_STS, else AWS_ENDPOINT_URL, else the region's
 *                      https://sts.REGION.amazonaws.com; the token file is read on every fetch
 *   4. container       AWS_CONTAINER_CREDENTIALS_RELATIVE_URI (on http://169.254.170.2) or
 *                      AWS_CONTAINER_CREDENTIALS_FULL_URI (https, or a host that resolves only to
 *                      loopback, 169.254.170.2, 169.254.170.23 or fd00:ec2::23); the
 *                      Authorization header from AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE (read on
 *                      every fetch) or AWS_CONTAINER_AUTHORIZATION_TOKEN
 *   5. instance        IMDSv2 at AWS_EC2_METADATA_SERVICE_ENDPOINT (default http://169.254.169.254,
 *      metadata        or http://[fd00:ec2::254] with AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE=IPv6):
 *                      PUT /latest/api/token (X-aws-ec2-metadata-token-ttl-seconds), then GET
 *                      /latest/meta-data/iam/security-credentials/ and .../ROLE with the
 *                      X-aws-ec2-metadata-token header; no IMDSv1 fallback.
 *                      AWS_EC2_METADATA_DISABLED=true turns it off.
 *
 * Credentials that expire are fetched again when less than BN_AWS_REFRESH_S is left; when that
 * fails, the old ones serve until they expire. Every request has a timeout (BN_AWS_TIMEOUT_S).
 *
 * Usage:
 *
 *     bn_aws_chain c;
 *     char why[512];
 *     if (bn_aws_chain_init(&c, "eu-west-1", why, sizeof why)) ...;   // no request yet
 *     bn_aws_creds cr;
 *     if (bn_aws_chain_get(&c, now_wall_seconds, &cr, why, sizeof why)) ...;  // fetches if due
 *
 * Ownership: the chain is a plain struct (nothing to free); one thread uses it at a time.
 */
#ifndef BITNET_APP_AWS_CREDS_H
#define BITNET_APP_AWS_CREDS_H

#include <stddef.h>

#define BN_AWS_REFRESH_S 300.0 /* fetch again when less than this is left */
#define BN_AWS_TIMEOUT_S 5L    /* per request to STS, a container endpoint or IMDS */

typedef enum bn_aws_source {
    BN_AWS_SRC_ENV = 0,
    BN_AWS_SRC_FILES = 1,
    BN_AWS_SRC_WEB_IDENTITY = 2,
    BN_AWS_SRC_CONTAINER = 3,
    BN_AWS_SRC_IMDS = 4,
} bn_aws_source;

typedef struct bn_aws_creds {
    char key_id[128], secret[256], token[2048];
    double expires; /* seconds since the epoch; 0: they do not expire */
} bn_aws_creds;

typedef struct bn_aws_chain {
    bn_aws_source source;
    char profile[128];
    char url[1024];                                          /* STS, container or IMDS */
    char role_arn[256], session_name[128], token_file[1024]; /* web identity */
    char auth[1024], auth_file[1024];                        /* container Authorization */
    bn_aws_creds cur;
    int fetches; /* credential fetches made (successful or not) */
} bn_aws_chain;

/* "environment", "shared files", "web identity", "container", "instance metadata". */
const char *bn_aws_source_name(bn_aws_source s);

/* The region: setting if non-empty, else AWS_REGION, AWS_DEFAULT_REGION, the profile's region
 * in the config file; "" when none. */
void bn_aws_region(const char *setting, char *out, size_t size);

/* Picks the source (above) without a request; region names the STS endpoint. 0, or -1 with a
 * one-line why ("no AWS credentials: ...", "AWS_ROLE_ARN is not set ..."). */
int bn_aws_chain_init(bn_aws_chain *c, const char *region, char *why, size_t whysz);

/* The credentials to sign with at time now (seconds since the epoch), fetched when due. 0, or
 * -1 with why (the source and what failed). */
int bn_aws_chain_get(bn_aws_chain *c, double now, bn_aws_creds *out, char *why, size_t whysz);

#endif
