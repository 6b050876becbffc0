/*
 * jobs_view.h - how the conversion queue is shown: the jobs of one status or all, sorted
 * by a column either way (table.h's keys), from the document of `bitnet jobs list --json`.
 *
 * Usage (screen_convert.c):
 *
 *     jobs_view v;
 *     jobs_view_init(&v);
 *     cJSON *shown = jobs_view_take(&v, doc);  // v keeps doc; shown is a filtered, sorted copy
 *     if (jobs_view_key(&v, ch)) { shown = jobs_view_shown(&v); ... }
 *     jobs_view_release(&v);
 */
#ifndef BITNET_UI_JOBS_VIEW_H
#define BITNET_UI_JOBS_VIEW_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "table.h"

/* The columns (jobs_view.c's table): their cells are drawn by the screen. */
enum { JC_ID, JC_STATUS, JC_PROGRESS, JC_PHASE, JC_ETA, JC_SOURCE, JC_COUNT };

typedef struct jobs_view {
    ui_table tb;
    int status; /* index in the statuses: 0 all, queued, running, done, failed, cancelled */
    cJSON *raw; /* the last list, as the command gave it */
} jobs_view;

void jobs_view_init(jobs_view *v);
void jobs_view_release(jobs_view *v);
/* Keeps doc ({"jobs": [...]}) and returns the jobs shown: a new document the caller owns
 * (NULL when out of memory). */
cJSON *jobs_view_take(jobs_view *v, cJSON *doc);
/* The jobs shown from the kept list again (after a key); NULL without one. */
cJSON *jobs_view_shown(const jobs_view *v);
/* < > sort column, I order, C the column picker (table.h), f F status filter next /
 * previous: 1 when ch was taken. */
int jobs_view_key(jobs_view *v, int ch);
/* "status all, by ID▼" for the title. */
void jobs_view_describe(const jobs_view *v, char *buf, size_t size);

#endif
