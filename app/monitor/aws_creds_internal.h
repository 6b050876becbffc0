/* The answer parsers of app/monitor/aws_creds.c, for tests/unit/test_aws_creds.c only (the program
 * calls bn_aws_chain_*). Each fills *c from one answer, or returns -1 with the reason in why. */
#ifndef BITNET_APP_AWS_CREDS_INTERNAL_H
#define BITNET_APP_AWS_CREDS_INTERNAL_H

#include "aws_creds.h"

#include <stddef.h>

/* "2026-12-06T17:00:00Z" (fractions and "+00:00" accepted) -> Unix seconds; -1 if not UTC */
double bn__aws_parse_time(const char *s);
/* a JSON answer: the container endpoint or the instance metadata (IMDS) */
int bn__aws_parse_json(const char *text, bn_aws_creds *c, char *why, size_t whysz);
/* the XML answer of STS AssumeRoleWithWebIdentity */
int bn__aws_parse_sts(const char *text, bn_aws_creds *c, char *why, size_t whysz);

#endif
