/*
 * migrations.c - the schema of the history, as the list of steps that build it.
 *
 * Append-only: a released step is never edited, reordered or removed, since files out there
 * hold its result. To change the schema, add a step at the end (version = previous + 1),
 * raise BN_DB_SCHEMA_VERSION in bitnet/db.h to it, and add a test that opens a file of the
 * previous version. bn_db_open() runs each missing step in its own transaction and then sets
 * PRAGMA user_version to the step's version.
 *
 * Later features add their tables here when they need them (conversion jobs, alerts, the
 * exporter's spool).
 */
#include "db_int.h"

/* 1: runs, and a small key/value table for the library's own bookkeeping. */
static const char v1[] =
        "CREATE TABLE runs (\n"
        "  id INTEGER PRIMARY KEY AUTOINCREMENT,\n"
        "  command TEXT NOT NULL,\n"
        "  model_path TEXT,\n"
        "  model_sha256 TEXT,\n"
        "  params TEXT,              -- JSON\n"
        "  metrics TEXT,             -- JSON\n"
        "  started_at INTEGER NOT NULL, -- ms since the Unix epoch, UTC\n"
        "  ended_at INTEGER,\n"
        "  status TEXT NOT NULL DEFAULT 'running', -- running|ok|failed|incomplete|cancelled\n"
        "  error TEXT,\n"
        "  pid INTEGER,\n"
        "  host TEXT,\n"
        "  boot_id TEXT,             -- /proc/sys/kernel/random/boot_id at the start\n"
        "  proc_start INTEGER        -- the process's start time (ticks since boot)\n"
        ");\n"
        "CREATE INDEX runs_started ON runs(started_at);\n"
        "CREATE INDEX runs_command ON runs(command, started_at);\n"
        "CREATE INDEX runs_status ON runs(status);\n"
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT);\n";

/* 2: the sha256 of model files, by path, size and modification time, so that a large model is
 * hashed once and not on every run. */
static const char v2[] = "CREATE TABLE file_hashes (\n"
                         "  path TEXT PRIMARY KEY,\n"
                         "  size INTEGER NOT NULL,\n"
                         "  mtime_ns INTEGER NOT NULL,\n"
                         "  sha256 TEXT NOT NULL,\n"
                         "  hashed_at INTEGER NOT NULL -- ms since the Unix epoch\n"
                         ");\n";

/* 3 (db/spool.c): the monitor's spool (samples and notifications waiting for a sink that is down or
 * slow, sent oldest first and deleted once delivered) and the transitions of alert rules. */
static const char v3[] =
        "CREATE TABLE spool (\n"
        "  id INTEGER PRIMARY KEY AUTOINCREMENT,\n"
        "  sink TEXT NOT NULL,          -- cloudwatch|datadog|pushgateway|webhook\n"
        "  kind TEXT NOT NULL,          -- samples|notification|push\n"
        "  payload TEXT NOT NULL,       -- JSON, or the exposition text for push\n"
        "  created_at INTEGER NOT NULL, -- ms since the Unix epoch, UTC\n"
        "  attempts INTEGER NOT NULL DEFAULT 0,\n"
        "  last_error TEXT\n"
        ");\n"
        "CREATE INDEX spool_sink ON spool(sink, id);\n"
        "CREATE TABLE alert_transitions (\n"
        "  id INTEGER PRIMARY KEY AUTOINCREMENT,\n"
        "  rule TEXT NOT NULL,\n"
        "  from_state TEXT NOT NULL,    -- inactive|pending|firing|resolved\n"
        "  to_state TEXT NOT NULL,\n"
        "  at INTEGER NOT NULL,         -- ms since the Unix epoch, UTC\n"
        "  value REAL,                  -- NULL: no data\n"
        "  series TEXT,\n"
        "  metric TEXT,\n"
        "  severity TEXT,\n"
        "  host TEXT\n"
        ");\n"
        "CREATE INDEX alert_transitions_rule ON alert_transitions(rule, at);\n"
        "CREATE INDEX alert_transitions_at ON alert_transitions(at);\n";

/* 4: the conversion queue (db/jobs.c, its logic in app/convert/jobs.c): one row per `bitnet convert
 * --queue` job, with the worker's progress and the conversion report. */
static const char v4[] =
        "CREATE TABLE jobs (\n"
        "  id INTEGER PRIMARY KEY AUTOINCREMENT,\n"
        "  kind TEXT NOT NULL,            -- convert\n"
        "  args TEXT NOT NULL,            -- JSON: src, out, type, embd, validate, prompts, ...\n"
        "  status TEXT NOT NULL DEFAULT 'queued', -- queued|running|done|failed|cancelled\n"
        "  created_at INTEGER NOT NULL,   -- ms since the Unix epoch, UTC\n"
        "  started_at INTEGER,\n"
        "  ended_at INTEGER,\n"
        "  attempts INTEGER NOT NULL DEFAULT 0,\n"
        "  recovered INTEGER NOT NULL DEFAULT 0, -- times put back after its worker died\n"
        "  cancel_requested INTEGER NOT NULL DEFAULT 0,\n"
        "  worker_pid INTEGER,\n"
        "  phase TEXT,                    -- reference|writing|verifying|validating\n"
        "  percent REAL NOT NULL DEFAULT 0,\n"
        "  bytes_done INTEGER NOT NULL DEFAULT 0,\n"
        "  bytes_total INTEGER NOT NULL DEFAULT 0,\n"
        "  eta_s REAL,\n"
        "  result TEXT,                   -- JSON: the conversion report\n"
        "  error TEXT\n"
        ");\n"
        "CREATE INDEX jobs_status ON jobs(status, id);\n";

/* 5 (db/tenants.c, tenant_keys.c, usage.c, audit.c; bitnet/db_tenants.h): the platform's
 * tenants, their API keys (only the SHA-256 of each key is stored), the usage ledger (one row
 * per finished request, unique by request id; an erased tenant's rows are folded into one
 * anonymous row per day and model, whose requests column counts them) and the append-only,
 * hash-chained audit log (triggers refuse UPDATE and DELETE; verify catches a writer that
 * goes around them). */
static const char v5[] =
        "CREATE TABLE tenants (\n"
        "  id INTEGER PRIMARY KEY AUTOINCREMENT,\n"
        "  name TEXT NOT NULL UNIQUE,\n"
        "  tier TEXT NOT NULL,\n"
        "  status TEXT NOT NULL DEFAULT 'active', -- active|suspended|erased\n"
        "  stripe_customer TEXT,\n"
        "  created_at INTEGER NOT NULL          -- ms since the Unix epoch, UTC\n"
        ");\n"
        "CREATE TABLE api_keys (\n"
        "  id INTEGER PRIMARY KEY AUTOINCREMENT,\n"
        "  tenant_id INTEGER NOT NULL REFERENCES tenants(id),\n"
        "  prefix TEXT NOT NULL,      -- the start of the key, shown in listings\n"
        "  hash BLOB NOT NULL UNIQUE, -- SHA-256 of the key string; the key itself is never kept\n"
        "  scopes INTEGER NOT NULL,   -- 1 inference, 2 usage, 4 admin\n"
        "  created_at INTEGER NOT NULL,\n"
        "  expires_at INTEGER,        -- NULL: never\n"
        "  revoked_at INTEGER,\n"
        "  last_used_at INTEGER\n"
        ");\n"
        "CREATE INDEX api_keys_tenant ON api_keys(tenant_id);\n"
        "CREATE TABLE usage (\n"
        "  id INTEGER PRIMARY KEY AUTOINCREMENT,\n"
        "  request_id TEXT UNIQUE,    -- NULL only in an erased tenant's folded rows\n"
        "  tenant_id INTEGER NOT NULL REFERENCES tenants(id),\n"
        "  key_id INTEGER,            -- NULL once erased\n"
        "  model TEXT NOT NULL,\n"
        "  requests INTEGER NOT NULL DEFAULT 1,\n"
        "  prompt_tokens INTEGER NOT NULL,\n"
        "  completion_tokens INTEGER NOT NULL,\n"
        "  duration_ms INTEGER NOT NULL,\n"
        "  status TEXT NOT NULL,\n"
        "  at INTEGER NOT NULL        -- ms since the Unix epoch, UTC\n"
        ");\n"
        "CREATE INDEX usage_tenant_at ON usage(tenant_id, at);\n"
        "CREATE TABLE audit (\n"
        "  id INTEGER PRIMARY KEY AUTOINCREMENT,\n"
        "  at INTEGER NOT NULL,\n"
        "  actor TEXT NOT NULL,\n"
        "  action TEXT NOT NULL,\n"
        "  target TEXT NOT NULL,\n"
        "  details TEXT NOT NULL,     -- JSON\n"
        "  prev_hash TEXT NOT NULL,   -- the hash of the entry before (64 zeros for the first)\n"
        "  hash TEXT NOT NULL         -- SHA-256 over prev_hash and this entry (db/audit.c)\n"
        ");\n"
        "CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit\n"
        "  BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;\n"
        "CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit\n"
        "  BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;\n";

/* 6 (db/outbox.c; bitnet/db_tenants.h): the billing outbox, one meter event per ledger row of
 * a tenant with a Stripe customer and tokens, written in the ledger row's transaction and
 * unique by its request id; a sender claims the due ones (a lease, so that two senders do not
 * send one at once), and marks each acknowledged, due again later, or failed for good. */
static const char v6[] =
        "CREATE TABLE billing_outbox (\n"
        "  id INTEGER PRIMARY KEY AUTOINCREMENT,\n"
        "  event_id TEXT NOT NULL UNIQUE,   -- the identifier Stripe deduplicates on\n"
        "  request_id TEXT NOT NULL UNIQUE, -- its ledger row\n"
        "  tenant_id INTEGER NOT NULL REFERENCES tenants(id),\n"
        "  customer TEXT NOT NULL,          -- the tenant's Stripe customer at the time\n"
        "  value INTEGER NOT NULL,          -- tokens (prompt + completion)\n"
        "  at INTEGER NOT NULL,             -- the usage's time, ms since the Unix epoch, UTC\n"
        "  state TEXT NOT NULL DEFAULT 'pending', -- pending|acked|failed\n"
        "  attempts INTEGER NOT NULL DEFAULT 0,\n"
        "  next_at INTEGER NOT NULL,        -- not sent before this time (ms)\n"
        "  lease_until INTEGER,             -- a sender holds it until then\n"
        "  sent_at INTEGER,                 -- the last request for it\n"
        "  acked_at INTEGER,\n"
        "  duplicate INTEGER NOT NULL DEFAULT 0, -- Stripe had the identifier already\n"
        "  last_error TEXT\n"
        ");\n"
        "CREATE INDEX billing_outbox_due ON billing_outbox(state, next_at);\n"
        "CREATE INDEX billing_outbox_tenant ON billing_outbox(tenant_id, at);\n";

/* 7 (db/outbox.c): the pending events in id order, as a sender claims them (ORDER BY id
 * LIMIT n, through this index by name): before it, each claim read every pending row
 * through billing_outbox_due and sorted them, milliseconds a claim with tens of thousands
 * waiting. */
static const char v7[] =
        "CREATE INDEX billing_outbox_pending ON billing_outbox(id) WHERE state = 'pending';\n";

const bn__db_migration bn__db_migrations[] = {
        {1, v1}, {2, v2}, {3, v3}, {4, v4}, {5, v5}, {6, v6}, {7, v7},
};

const int bn__db_n_migrations = (int)(sizeof bn__db_migrations / sizeof bn__db_migrations[0]);

_Static_assert(sizeof bn__db_migrations / sizeof bn__db_migrations[0] == BN_DB_SCHEMA_VERSION,
               "BN_DB_SCHEMA_VERSION must be the version of the last migration");
