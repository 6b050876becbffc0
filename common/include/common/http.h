/*
 * http.h - the options every libcurl request of the program's senders shares: the URL, only
 * http and https, no signals (senders run in threads), a connect timeout of at most 5 s
 * within the request's whole timeout, and the user agent. Used by the monitor's sinks
 * (app/monitor/monitor_sinks.c) and the billing sender (common/billing.c).
 *
 *     curl_easy_reset(c);
 *     cm_http_setup(c, url, 10000);        // then the request's own headers, body, callbacks
 */
#ifndef BITNET_COMMON_HTTP_H
#define BITNET_COMMON_HTTP_H

#include <curl/curl.h>

void cm_http_setup(CURL *c, const char *url, long timeout_ms);

#endif
