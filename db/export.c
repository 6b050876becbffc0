/* export.c - writing the history as JSON or CSV. */
#include "db_int.h"

#include <string.h>
#include <time.h>

/* One CSV field, quoted (RFC 4180) when it holds a comma, a quote, CR, LF or edge spaces. */
static void csv_field(FILE *out, const char *s)
{
    if (!s) return;
    const size_t n = strlen(s);
    const int quote = strpbrk(s, ",\"\r\n") != NULL || (n && (s[0] == ' ' || s[n - 1] == ' '));
    if (!quote) {
        fputs(s, out);
        return;
    }
    fputc('"', out);
    for (const char *c = s; *c; c++) {
        if (*c == '"') fputc('"', out);
        fputc(*c, out);
    }
    fputc('"', out);
}

/* ms since the epoch as 2026-01-02T03:04:05.678Z (the exports' time format). */
static void iso_time(int64_t ms, char *buf, size_t size)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    if (!gmtime_r(&t, &tm)) {
        snprintf(buf, size, "%lld", (long long)ms);
        return;
    }
    char d[32];
    strftime(d, sizeof d, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, size, "%s.%03dZ", d, (int)(ms % 1000));
}

static const char csv_header[] = "id,command,status,started_at,ended_at,duration_s,model_path,"
                                 "model_sha256,params,metrics,error,pid,host\n";

static void csv_row(FILE *out, const bn_run *r)
{
    char start[48], end[48] = "", dur[32] = "";
    iso_time(r->started_ms, start, sizeof start);
    if (r->ended_ms) {
        iso_time(r->ended_ms, end, sizeof end);
        snprintf(dur, sizeof dur, "%.3f", (double)(r->ended_ms - r->started_ms) / 1000.0);
    }
    fprintf(out, "%lld,", (long long)r->id);
    csv_field(out, r->command);
    fprintf(out, ",%s,%s,%s,%s,", bn_run_status_str(r->status), start, end, dur);
    const char *const rest[] = {r->model_path, r->model_sha256, r->params_json, r->metrics_json,
                                r->error};
    for (size_t i = 0; i < sizeof rest / sizeof rest[0]; i++) {
        csv_field(out, rest[i]);
        fputc(',', out);
    }
    fprintf(out, "%lld,", (long long)r->pid);
    csv_field(out, r->host);
    fputc('\n', out);
}

bn_status bn_db_export(bn_db *db, const bn_run_filter *f, bn_db_format fmt, FILE *out)
{
    bn_run_filter all = bn_run_filter_all();
    all.oldest_first = 1;
    sqlite3_stmt *st;
    bn_status s = bn__db_query_runs(db, f ? f : &all, &st);
    if (s != BN_OK) return s;
    fputs(fmt == BN_DB_FORMAT_CSV ? csv_header : "{\"runs\": [", out);
    int rc;
    size_t n = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        bn_run r;
        s = bn__db_read_run(db, st, &r);
        if (s != BN_OK) break;
        if (fmt == BN_DB_FORMAT_CSV)
            csv_row(out, &r);
        else
            fprintf(out, "%s\n  %s", n ? "," : "", r.json);
        n++;
        bn_run_release(&r);
        if (ferror(out)) break;
    }
    if (s == BN_OK && rc != SQLITE_ROW && rc != SQLITE_DONE) s = bn__db_sqlerr(db, rc, "exporting");
    sqlite3_finalize(st);
    if (fmt != BN_DB_FORMAT_CSV) fputs(n ? "\n]}\n" : "]}\n", out);
    if (s == BN_OK && (fflush(out) != 0 || ferror(out)))
        s = bn__db_err(db, BN_ERR_IO, "writing the export failed");
    return s;
}
