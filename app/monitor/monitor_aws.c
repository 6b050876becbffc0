/* monitor_aws.c - the CloudWatch sink's region and credentials: the AWS chain of aws_creds.h,
 * fetched once when the monitor starts (a source that fails stops the start, as bitnet validate
 * says) and again before a request when they are due. */
#include "monitor.h"

#include <stdio.h>
#include <string.h>

static int valid_region(const char *r)
{
    if (!*r || strlen(r) > 40) return 0;
    for (; *r; r++)
        if (!((*r >= 'a' && *r <= 'z') || (*r >= '0' && *r <= '9') || *r == '-')) return 0;
    return 1;
}

int mon_aws_load(mon_aws *a, const char *region, const char *ns, char *why, size_t whysz)
{
    memset(a, 0, sizeof *a);
    bn_aws_region(region, a->region, sizeof a->region);
    if (!valid_region(a->region)) {
        snprintf(why, whysz,
                 "CloudWatch needs a region (exporters.cloudwatch.region, AWS_REGION or the AWS "
                 "config file)");
        return -1;
    }
    snprintf(a->ns, sizeof a->ns, "%s", ns && *ns ? ns : "BitNet");
    if (!strncmp(a->ns, "AWS/", 4)) {
        snprintf(why, whysz, "CloudWatch namespace '%s': names beginning with AWS/ are reserved",
                 a->ns);
        return -1;
    }
    char w[600];
    if (bn_aws_chain_init(&a->chain, a->region, w, sizeof w)) {
        snprintf(why, whysz, "CloudWatch credentials: %s", w);
        return -1;
    }
    return mon_aws_refresh(a, why, whysz);
}

int mon_aws_refresh(mon_aws *a, char *why, size_t whysz)
{
    bn_aws_creds c;
    if (bn_aws_chain_get(&a->chain, mon_wall(), &c, why, whysz)) return -1;
    memcpy(a->key_id, c.key_id, sizeof a->key_id);
    memcpy(a->secret, c.secret, sizeof a->secret);
    memcpy(a->token, c.token, sizeof a->token);
    return 0;
}
