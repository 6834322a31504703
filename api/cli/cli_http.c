/*
 * cli_http.c - the client's requests to valetd, through libcurl.
 *
 * Theory of operation: one easy handle per run of the command, so that
 * the several requests of a command (watch polls, get's fall-back from a
 * job to a pipeline) share one keep-alive connection. Each request sets
 * its method and body, collects the answer into a growing buffer, and
 * parses it as JSON when it is JSON (every answer of valetd with a body
 * is). A transport failure (nothing answered) is reported here, once,
 * with libcurl's reason and the URL, as CLI_UNREACHABLE; an answer of any
 * status goes back to the caller. cli_http_call() makes a non-2xx answer
 * an error: the server's "message" is printed as it is, and the status
 * maps to an exit status (401/403 -> 4, 404 -> 5, 503 -> 7, others -> 6).
 *
 * HTTPS is verified (peer and host name) with the system's CA store or
 * --cacert; nothing turns verification off. --cert (and --key) present a
 * client certificate, for a valetd with tls_client_auth. Only http and
 * https are followed, and redirects are not.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#ifndef VALET_VERSION
#define VALET_VERSION "0.0.0"
#endif

/* Where libcurl writes the answer. */
struct sink {
	char *buf;
	size_t len, cap;
	bool oom;
};

static size_t sink_write(char *data, size_t size, size_t n, void *arg)
{
	struct sink *s = arg;
	size_t add = size * n, cap;
	char *p;

	if (s->len + add + 1 > s->cap) {
		cap = s->cap ? s->cap : 4096;
		while (cap < s->len + add + 1)
			cap *= 2;
		p = realloc(s->buf, cap);
		if (!p) {
			s->oom = true;
			return 0; /* libcurl ends the transfer: CURLE_WRITE_ERROR */
		}
		s->buf = p;
		s->cap = cap;
	}
	memcpy(s->buf + s->len, data, add);
	s->len += add;
	s->buf[s->len] = '\0';
	return add;
}

int cli_http_open(struct cli *cli)
{
	char auth[1024];

	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return -ENOMEM;
	cli->curl = curl_easy_init();
	if (!cli->curl)
		return -ENOMEM;
	cli->headers = curl_slist_append(NULL, "Accept: application/json");
	if (cli->token) {
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s", cli->token);
		cli->headers = curl_slist_append(cli->headers, auth);
	}
	if (!cli->headers)
		return -ENOMEM;
	curl_easy_setopt(cli->curl, CURLOPT_HTTPHEADER, cli->headers);
	curl_easy_setopt(cli->curl, CURLOPT_USERAGENT, "valet/" VALET_VERSION);
	curl_easy_setopt(cli->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(cli->curl, CURLOPT_ERRORBUFFER, cli->errbuf);
	curl_easy_setopt(cli->curl, CURLOPT_CONNECTTIMEOUT, 10L);
	/* Longer than valetd's own bounds ([storage] submit_timeout, a cancel
	 * waiting for the kill), so that every request gets its answer. */
	curl_easy_setopt(cli->curl, CURLOPT_TIMEOUT, 120L);
	curl_easy_setopt(cli->curl, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(cli->curl, CURLOPT_SSL_VERIFYHOST, 2L);
#if LIBCURL_VERSION_NUM >= 0x075500
	curl_easy_setopt(cli->curl, CURLOPT_PROTOCOLS_STR, "http,https");
#else
	curl_easy_setopt(cli->curl, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
	if (cli->cacert)
		curl_easy_setopt(cli->curl, CURLOPT_CAINFO, cli->cacert);
	if (cli->cert)
		curl_easy_setopt(cli->curl, CURLOPT_SSLCERT, cli->cert);
	if (cli->key)
		curl_easy_setopt(cli->curl, CURLOPT_SSLKEY, cli->key);
	return 0;
}

void cli_http_close(struct cli *cli)
{
	if (cli->curl)
		curl_easy_cleanup(cli->curl);
	curl_slist_free_all(cli->headers);
	cli->curl = NULL;
	cli->headers = NULL;
	curl_global_cleanup();
}

void cli_response_free(struct cli_response *r)
{
	json_decref(r->body);
	free(r->text);
	memset(r, 0, sizeof(*r));
}

int cli_http_send(struct cli *cli, const char *method, const char *path, json_t *body,
		  struct cli_response *r)
{
	struct curl_slist *hdrs = NULL, *h;
	struct sink sink = {0};
	char *url = NULL, *text = NULL;
	CURLcode rc;

	memset(r, 0, sizeof(*r));
	if (asprintf(&url, "%s%s", cli->url, path) < 0) {
		url = NULL;
		goto oom;
	}
	if (body) {
		text = json_dumps(body, JSON_COMPACT);
		if (!text)
			goto oom;
	}
	cli->errbuf[0] = '\0';
	curl_easy_setopt(cli->curl, CURLOPT_URL, url);
	curl_easy_setopt(cli->curl, CURLOPT_WRITEFUNCTION, sink_write);
	curl_easy_setopt(cli->curl, CURLOPT_WRITEDATA, &sink);
	curl_easy_setopt(cli->curl, CURLOPT_HTTPGET, 1L);
	curl_easy_setopt(cli->curl, CURLOPT_CUSTOMREQUEST, NULL);
	curl_easy_setopt(cli->curl, CURLOPT_HTTPHEADER, cli->headers);
	if (strcmp(method, "GET") != 0) {
		/* A body, or an empty one (POST .../cancel): Content-Length: 0. */
		curl_easy_setopt(cli->curl, CURLOPT_POSTFIELDS, text ? text : "");
		curl_easy_setopt(cli->curl, CURLOPT_POSTFIELDSIZE, text ? (long)strlen(text) : 0L);
		curl_easy_setopt(cli->curl, CURLOPT_CUSTOMREQUEST, method);
		/* The common headers, and the body's type (libcurl's default
		 * would be a form's). */
		for (h = cli->headers; h; h = h->next)
			hdrs = curl_slist_append(hdrs, h->data);
		hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
		if (!hdrs)
			goto oom;
		curl_easy_setopt(cli->curl, CURLOPT_HTTPHEADER, hdrs);
	}
	rc = curl_easy_perform(cli->curl);
	curl_easy_setopt(cli->curl, CURLOPT_HTTPHEADER, cli->headers);
	curl_slist_free_all(hdrs);
	hdrs = NULL;
	if (rc != CURLE_OK) {
		if (sink.oom)
			goto oom;
		if (!cli->quiet)
			fprintf(stderr, "valet: cannot reach valetd at %s: %s\n", cli->url,
				cli->errbuf[0] ? cli->errbuf : curl_easy_strerror(rc));
		if (!cli->quiet && (rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST))
			fprintf(stderr,
				"valet: is valetd running there? (set VALET_URL or --url)\n");
		free(sink.buf);
		free(text);
		free(url);
		return CLI_UNREACHABLE;
	}
	curl_easy_getinfo(cli->curl, CURLINFO_RESPONSE_CODE, &r->status);
	r->text = sink.buf ? sink.buf : strdup("");
	r->len = sink.len;
	if (r->len)
		r->body = json_loadb(r->text, r->len, 0, NULL);
	free(text);
	free(url);
	if (!r->text)
		goto oom;
	return CLI_OK;
oom:
	curl_slist_free_all(hdrs);
	free(sink.buf);
	free(text);
	free(url);
	fprintf(stderr, "valet: out of memory\n");
	return CLI_ERROR;
}

int cli_http_exit_for(long status)
{
	if (status >= 200 && status < 300)
		return CLI_OK;
	if (status == 401 || status == 403)
		return CLI_DENIED;
	if (status == 404)
		return CLI_NOTFOUND;
	if (status == 503)
		return CLI_UNAVAILABLE;
	return CLI_ERROR;
}

int cli_http_refused(const struct cli *cli, const struct cli_response *r)
{
	json_t *msg = json_object_get(r->body, "message");
	char head[201], buf[2048];

	if (cli->quiet)
		return cli_http_exit_for(r->status);
	if (json_is_string(msg)) {
		fprintf(stderr, "valet: %s (HTTP %ld)\n",
			cli_out_safe(json_string_value(msg), buf, sizeof(buf)), r->status);
	} else {
		snprintf(head, sizeof(head), "%s", r->text ? r->text : "");
		fprintf(stderr, "valet: the server answered HTTP %ld%s%s\n", r->status,
			r->len ? ": " : "", cli_out_safe(head, buf, sizeof(buf)));
	}
	if (r->status == 401)
		fprintf(stderr, "valet: give an API key with VALET_TOKEN or --token%s\n",
			cli->token ? " (this one was refused)" : "");
	return cli_http_exit_for(r->status);
}

int cli_http_call(struct cli *cli, const char *method, const char *path, json_t *body,
		  struct cli_response *r)
{
	int rc = cli_http_send(cli, method, path, body, r);

	if (rc != CLI_OK)
		return rc;
	if (r->status >= 200 && r->status < 300)
		return CLI_OK;
	rc = cli_http_refused(cli, r);
	cli_response_free(r);
	return rc;
}
