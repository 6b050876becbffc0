/* cmd_jobs.c - `bitnet jobs`: the conversion queue (list, show, cancel, retry, wait, work). */
#include "commands.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "convert/jobs.h"

void cmd_jobs_help(FILE *out)
{
    fprintf(out,
            "Usage: bitnet jobs list [--status S] [--limit N] [--json]\n"
            "       bitnet jobs show ID [--json]\n"
            "       bitnet jobs cancel ID\n"
            "       bitnet jobs retry ID\n"
            "       bitnet jobs wait [ID...] [--timeout SECONDS] [--json]\n"
            "       bitnet jobs work [--forever]\n\n"
            "The conversion queue (jobs added by 'bitnet convert --queue'), kept in the\n"
            "history database. States: queued, running, done, failed, cancelled.\n\n"
            "  list     jobs, newest first: id, status, percent, phase, source, output\n"
            "  show     one job: its arguments, progress (phase, bytes, percent, ETA), error\n"
            "           and, when done, the conversion report (validation included)\n"
            "  cancel   a queued job at once; a running one within one tensor or layer\n"
            "  retry    a failed or cancelled job goes back to the queue\n"
            "  wait     until the jobs (default: all) are done, failed or cancelled, starting a\n"
            "           worker when jobs are queued and none runs; exit 1 if any did not\n"
            "           finish as done (or on timeout)\n"
            "  work     run the worker in the foreground until the queue is empty (--forever:\n"
            "           keep waiting); 'convert --queue' starts one in the background\n\n"
            "A job whose stored arguments or result cannot be read (not valid JSON) is still\n"
            "listed, with a warning naming it on stderr and \"problem\" in --json.\n"
            "A job whose worker died (kill -9, crash) is put back to the queue by the next\n"
            "jobs command or worker and restarts from the beginning; its partial output is\n"
            "removed and never carries the final name.\n"
            "Exit status: 0 ok, 1 failure, 2 usage error.\n");
}

static double num(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

static const char *str(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : "-";
}

/* One line of the table; a row that could not be fully read is named on stderr too. */
static void print_row(const cJSON *o)
{
    printf("%5.0f  %-9s %5.1f%%  %-10s %s -> %s\n", num(o, "id"), str(o, "status"),
           num(o, "percent"), str(o, "phase"), str(o, "src"), str(o, "out"));
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(o, "problem");
    if (cJSON_IsString(p))
        fprintf(stderr, "bitnet: warning: job %.0f: %s (shown without them)\n", num(o, "id"),
                p->valuestring);
}

static int parse_id(const char *C, const char *s, int64_t *id)
{
    long v;
    if (!s || cli_parse_long(s, 1, 1L << 62, &v))
        return cli_usage_error(C, "bad job id '%s'", s ? s : "");
    *id = v;
    return 0;
}

static int cmd_list(int argc, char **argv)
{
    const char *C = "jobs list", *status = NULL;
    long limit = 0;
    int json = 0;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--json")) {
            json = 1;
        } else if (!strcmp(argv[i], "--status") && i + 1 < argc) {
            status = argv[++i];
        } else if (!strcmp(argv[i], "--limit") && i + 1 < argc) {
            if (cli_parse_long(argv[++i], 1, 1000000, &limit))
                return cli_usage_error(C, "--limit takes 1 .. 1000000");
        } else {
            return cli_usage_error(C, "unknown option '%s'", argv[i]);
        }
    }
    jobs_db *j;
    char err[512];
    if (jobs_open(&j, err, sizeof err) != 0) {
        cli_error("jobs: %s", err);
        return BN_EXIT_FAIL;
    }
    cJSON *doc = jobs_list_json(j, status, (int)limit, err, sizeof err);
    jobs_close(j);
    if (!doc) {
        cli_error("jobs: %s", err);
        return BN_EXIT_FAIL;
    }
    if (json) return cli_print_json(doc) ? BN_EXIT_FAIL : BN_EXIT_OK;
    const cJSON *o;
    printf("%5s  %-9s %6s  %-10s %s\n", "id", "status", "done", "phase", "source -> output");
    cJSON_ArrayForEach(o, cJSON_GetObjectItemCaseSensitive(doc, "jobs")) print_row(o);
    cJSON_Delete(doc);
    return BN_EXIT_OK;
}

static int cmd_show(int argc, char **argv)
{
    const char *C = "jobs show";
    int json = 0;
    const char *ids = NULL;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--json"))
            json = 1;
        else if (!ids && argv[i][0] != '-')
            ids = argv[i];
        else
            return cli_usage_error(C, "unknown option '%s'", argv[i]);
    }
    int64_t id = 0;
    if (!ids) return cli_usage_error(C, "which job?");
    int r = parse_id(C, ids, &id);
    if (r) return r;
    jobs_db *j;
    char err[512];
    if (jobs_open(&j, err, sizeof err) != 0) {
        cli_error("jobs: %s", err);
        return BN_EXIT_FAIL;
    }
    cJSON *o = jobs_get_json(j, id, err, sizeof err);
    jobs_close(j);
    if (!o) {
        cli_error("jobs: %s", err);
        return BN_EXIT_FAIL;
    }
    if (json) return cli_print_json(o) ? BN_EXIT_FAIL : BN_EXIT_OK;
    printf("job %.0f: %s\n  source   %s\n  output   %s\n  progress %.1f%% (%s), %.0f of %.0f "
           "bytes",
           num(o, "id"), str(o, "status"), str(o, "src"), str(o, "out"), num(o, "percent"),
           str(o, "phase"), num(o, "bytes_done"), num(o, "bytes_total"));
    if (cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(o, "eta_s")))
        printf(", ETA %.0f s", num(o, "eta_s"));
    printf("\n  attempts %.0f\n", num(o, "attempts"));
    if (cJSON_IsString(cJSON_GetObjectItemCaseSensitive(o, "error")))
        printf("  error    %s\n", str(o, "error"));
    if (cJSON_IsString(cJSON_GetObjectItemCaseSensitive(o, "problem")))
        printf("  problem  %s\n", str(o, "problem"));
    const cJSON *res = cJSON_GetObjectItemCaseSensitive(o, "result");
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(res, "validation");
    if (cJSON_IsObject(res)) printf("  sha256   %s\n", str(res, "sha256"));
    if (v)
        printf("  validation: cosine %.4f, top-1 %.1f%%, KL %.4f, perplexity %.3f -> %.3f\n",
               num(v, "cosine_mean"), 100 * num(v, "top1_agreement"), num(v, "kl_mean"),
               num(v, "ppl_ref"), num(v, "ppl_conv"));
    cJSON_Delete(o);
    return BN_EXIT_OK;
}

static int cmd_change(int argc, char **argv, int retry)
{
    const char *C = retry ? "jobs retry" : "jobs cancel";
    if (argc != 3) return cli_usage_error(C, "takes one job id");
    int64_t id = 0;
    int r = parse_id(C, argv[2], &id);
    if (r) return r;
    jobs_db *j;
    char err[512];
    if (jobs_open(&j, err, sizeof err) != 0) {
        cli_error("jobs: %s", err);
        return BN_EXIT_FAIL;
    }
    int rc = retry ? jobs_retry(j, id, err, sizeof err) : jobs_cancel(j, id, err, sizeof err);
    jobs_close(j);
    if (rc != 0) {
        cli_error("jobs: %s", err);
        return BN_EXIT_FAIL;
    }
    if (retry) jobs_start_worker();
    printf("job %lld: %s\n", (long long)id, retry ? "queued again" : "cancel requested");
    return BN_EXIT_OK;
}

static int final_state(const char *s)
{
    return !strcmp(s, "done") || !strcmp(s, "failed") || !strcmp(s, "cancelled");
}

static int cmd_wait(int argc, char **argv)
{
    const char *C = "jobs wait";
    int64_t ids[64];
    int n = 0, json = 0;
    long timeout = 0;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--json")) {
            json = 1;
        } else if (!strcmp(argv[i], "--timeout") && i + 1 < argc) {
            if (cli_parse_long(argv[++i], 1, 1000000, &timeout))
                return cli_usage_error(C, "--timeout takes seconds");
        } else if (argv[i][0] != '-' && n < 64) {
            int r = parse_id(C, argv[i], &ids[n]);
            if (r) return r;
            n++;
        } else {
            return cli_usage_error(C, "unknown option '%s'", argv[i]);
        }
    }
    const time_t t0 = time(NULL);
    for (;;) {
        jobs_db *j;
        char err[512];
        if (jobs_open(&j, err, sizeof err) != 0) {
            cli_error("jobs: %s", err);
            return BN_EXIT_FAIL;
        }
        cJSON *doc = jobs_list_json(j, NULL, 0, err, sizeof err);
        jobs_close(j);
        if (!doc) {
            cli_error("jobs: %s", err);
            return BN_EXIT_FAIL;
        }
        int pending = 0, bad = 0, queued = 0, found = 0;
        cJSON *sel = cJSON_CreateArray();
        const cJSON *o;
        cJSON_ArrayForEach(o, cJSON_GetObjectItemCaseSensitive(doc, "jobs"))
        {
            int want = n == 0;
            for (int k = 0; k < n && !want; k++) want = (int64_t)num(o, "id") == ids[k];
            if (!want) continue;
            found++;
            const char *s = str(o, "status");
            pending += !final_state(s);
            queued += !strcmp(s, "queued");
            bad += final_state(s) && strcmp(s, "done") != 0;
            cJSON_AddItemToArray(sel, cJSON_Duplicate(o, 1));
        }
        cJSON_Delete(doc);
        if (n > 0 && found < n) {
            cJSON_Delete(sel);
            cli_error("jobs wait: no such job");
            return BN_EXIT_FAIL;
        }
        const int timed_out = timeout > 0 && time(NULL) - t0 >= timeout;
        if (pending == 0 || timed_out) {
            if (json) {
                cJSON *d = cJSON_CreateObject();
                cJSON_AddItemToObject(d, "jobs", sel);
                cJSON_AddBoolToObject(d, "timed_out", pending > 0);
                cli_print_json(d);
            } else {
                cJSON_ArrayForEach(o, sel) print_row(o);
                cJSON_Delete(sel);
            }
            if (pending > 0) cli_error("jobs wait: timed out with %d jobs unfinished", pending);
            return pending || bad ? BN_EXIT_FAIL : BN_EXIT_OK;
        }
        cJSON_Delete(sel);
        if (queued) jobs_start_worker();
        usleep(200000);
    }
}

int cmd_jobs(int argc, char **argv)
{
    if (argc < 2)
        return cli_usage_error("jobs", "which subcommand? (list, show, cancel, retry, "
                                       "wait, work)");
    const char *sub = argv[1];
    if (!strcmp(sub, "-h") || !strcmp(sub, "--help")) {
        cmd_jobs_help(stdout);
        return BN_EXIT_OK;
    }
    for (int i = 2; i < argc; i++)
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            cmd_jobs_help(stdout);
            return BN_EXIT_OK;
        }
    if (!strcmp(sub, "list")) return cmd_list(argc, argv);
    if (!strcmp(sub, "show")) return cmd_show(argc, argv);
    if (!strcmp(sub, "cancel")) return cmd_change(argc, argv, 0);
    if (!strcmp(sub, "retry")) return cmd_change(argc, argv, 1);
    if (!strcmp(sub, "wait")) return cmd_wait(argc, argv);
    if (!strcmp(sub, "work")) {
        int forever = 0;
        for (int i = 2; i < argc; i++) {
            if (!strcmp(argv[i], "--forever"))
                forever = 1;
            else
                return cli_usage_error("jobs work", "unknown option '%s'", argv[i]);
        }
        char err[512];
        if (jobs_work(forever, err, sizeof err) != 0) {
            cli_error("jobs work: %s", err);
            return BN_EXIT_FAIL;
        }
        return BN_EXIT_OK;
    }
    return cli_usage_error("jobs", "unknown subcommand '%s'", sub);
}
