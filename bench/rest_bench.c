/*
 * carillon-rest-bench: a closed-loop HTTP/1.1 keep-alive load generator for SigV4-signed requests,
 * over N connections (one thread each) for a fixed time; prints requests/s and latency percentiles.
 *
 *   GET, signed once (valid for the server's clock-skew window):
 *     carillon-rest-bench --port 8080 --akid AKIA... --secret ... --path /app-instance-users/<arn>
 *   POST, signed per request, "{n}" in the body replaced by a unique number (ClientRequestToken):
 *     carillon-rest-bench ... --method POST --path /channels/<arn>/messages --bearer <user arn> \
 *         --body '{"Content":"hi","Type":"STANDARD","Persistence":"PERSISTENT","ClientRequestToken":"t{n}"}' \
 *         --expect 201
 *   "{t}" in the body becomes the send time in epoch microseconds (carillon-ws-bench measures the
 *   latency to the receiving sessions from it).
 *   [--connections 16] [--seconds 10] [--paths FILE: one path per line, used round-robin instead of
 *   --path] [--rate R: at most R requests/s in total, paced per connection]
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "carillon/sigv4.h"

struct opts {
	const char *host, *akid, *secret, *region, *path, *method, *body, *bearer, *paths_file;
	int port, connections, seconds, expect;
	double rate;
};

static char **paths;
static int n_paths;

struct worker {
	pthread_t th;
	int index;
	const char *req;
	size_t req_len;
	double *lat;
	size_t n, cap;
	long errors;
	volatile int *stop;
	const struct opts *o;
};

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int connect_to(const struct opts *o)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)o->port)};
	inet_pton(AF_INET, o->host, &sa.sin_addr);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Read one response; returns its status or -1. */
static int read_response(int fd, char *buf, size_t cap)
{
	size_t have = 0;
	for (;;) {
		ssize_t n = recv(fd, buf + have, cap - have - 1, 0);
		if (n <= 0)
			return -1;
		have += (size_t)n;
		buf[have] = '\0';
		char *eoh = strstr(buf, "\r\n\r\n");
		if (!eoh)
			continue;
		char *cl = strcasestr(buf, "content-length:");
		size_t body = cl && cl < eoh ? strtoul(cl + 15, NULL, 10) : 0;
		size_t total = (size_t)(eoh + 4 - buf) + body;
		while (have < total) {
			n = recv(fd, buf + have, cap - have - 1, 0);
			if (n <= 0)
				return -1;
			have += (size_t)n;
		}
		return atoi(buf + 9);
	}
}

static size_t build_request(const struct opts *o, const char *path, unsigned long n, char *out, size_t cap);
static double now_s(void);

static void *run(void *arg)
{
	struct worker *w = arg;
	char buf[65536], req[16384];
	int fd = connect_to(w->o);
	unsigned long n = 0;
	/* Paced workers start staggered across the interval: clients are not synchronised, and a
	 * burst of every connection at once would measure the burst, not the offered rate. */
	double interval = w->o->rate > 0 ? w->o->connections / w->o->rate : 0;
	double next = now_s() + interval * w->index / (w->o->connections ? w->o->connections : 1);
	while (!*w->stop && fd >= 0) {
		if (interval > 0) { /* fixed offered load */
			double wait = next - now_s();
			if (wait > 0)
				usleep((useconds_t)(wait * 1e6));
			next += interval;
		}
		const char *msg = w->req;
		size_t len = w->req_len;
		if (!msg) { /* signed per request */
			const char *path = n_paths ? paths[(w->index + n) % (unsigned long)n_paths] : w->o->path;
			len = build_request(w->o, path, (unsigned long)w->index * 100000000UL + n, req, sizeof(req));
			n++;
			msg = req;
		}
		double t0 = now_s();
		if (send(fd, msg, len, 0) != (ssize_t)len)
			break;
		int status = read_response(fd, buf, sizeof(buf));
		if (status != w->o->expect) {
			if (w->errors < 3)
				fprintf(stderr, "status %d: %.300s\n", status, buf);
			w->errors++;
			if (status < 0) {
				close(fd);
				fd = connect_to(w->o);
			}
			continue;
		}
		if (w->n == w->cap) {
			w->cap = w->cap ? w->cap * 2 : 65536;
			w->lat = realloc(w->lat, w->cap * sizeof(double));
		}
		w->lat[w->n++] = now_s() - t0;
	}
	if (fd >= 0)
		close(fd);
	return NULL;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static char host_header[128];
static const char *bearer_header;

static const char *hdr(void *ctx, const char *name)
{
	if (!strcmp(name, "host"))
		return host_header;
	if (!strcmp(name, "x-amz-date"))
		return ctx;
	if (!strcmp(name, "x-amz-chime-bearer"))
		return bearer_header;
	if (!strcmp(name, "content-type"))
		return "application/json";
	return NULL;
}

/* Replace every "{n}" by n and every "{t}" by the epoch microseconds now. */
static void expand_body(const char *tpl, unsigned long n, char *out, size_t cap)
{
	size_t o = 0;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	long long us = (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
	for (const char *p = tpl; *p && o + 32 < cap; p++) {
		if (!strncmp(p, "{n}", 3)) {
			o += (size_t)snprintf(out + o, cap - o, "%lu", n);
			p += 2;
		} else if (!strncmp(p, "{t}", 3)) {
			o += (size_t)snprintf(out + o, cap - o, "%lld", us);
			p += 2;
		} else {
			out[o++] = *p;
		}
	}
	out[o] = '\0';
}

/* A complete signed request for `path`. */
static size_t build_request(const struct opts *o, const char *path, unsigned long n, char *out, size_t cap)
{
	char body[8192] = "", amz_date[17];
	if (o->body)
		expand_body(o->body, n, body, sizeof(body));
	time_t t = time(NULL);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(amz_date, sizeof(amz_date), "%Y%m%dT%H%M%SZ", &tm);
	struct carillon_sigv4_request sr = {.method = o->method, .raw_path = path, .raw_query = "", .header = hdr,
					    .header_ctx = amz_date, .body = (const unsigned char *)body,
					    .body_len = strlen(body)};
	struct carillon_sigv4_auth *a = calloc(1, sizeof(*a));
	snprintf(a->access_key_id, sizeof(a->access_key_id), "%s", o->akid);
	memcpy(a->date, amz_date, 8);
	snprintf(a->region, sizeof(a->region), "%s", o->region);
	snprintf(a->service, sizeof(a->service), "chime");
	memcpy(a->amz_date, amz_date, 17);
	snprintf(a->signed_headers, sizeof(a->signed_headers), "%s",
		 o->bearer ? (o->body ? "content-type;host;x-amz-chime-bearer;x-amz-date" : "host;x-amz-chime-bearer;x-amz-date")
			   : (o->body ? "content-type;host;x-amz-date" : "host;x-amz-date"));
	carillon_sigv4_sign_auth(&sr, a, o->secret);
	char bearer_line[2048] = "";
	if (o->bearer)
		snprintf(bearer_line, sizeof(bearer_line), "x-amz-chime-bearer: %s\r\n", o->bearer);
	int len = snprintf(out, cap,
			   "%s %s HTTP/1.1\r\nHost: %s\r\nX-Amz-Date: %s\r\n%s%sContent-Length: %zu\r\n"
			   "Authorization: AWS4-HMAC-SHA256 Credential=%s/%.8s/%s/chime/aws4_request, SignedHeaders=%s, "
			   "Signature=%s\r\n\r\n%s",
			   o->method, path, host_header, amz_date, bearer_line,
			   o->body ? "Content-Type: application/json\r\n" : "", strlen(body), o->akid, amz_date, o->region,
			   a->signed_headers, a->signature, body);
	free(a);
	return len > 0 && (size_t)len < cap ? (size_t)len : 0;
}

int main(int argc, char **argv)
{
	struct opts o = {"127.0.0.1", NULL, NULL, "us-east-1", NULL, "GET", NULL, NULL, NULL, 8080, 16, 10, 0, 0};
	for (int i = 1; i + 1 < argc; i += 2) {
		const char *k = argv[i], *v = argv[i + 1];
		if (!strcmp(k, "--host")) o.host = v;
		else if (!strcmp(k, "--port")) o.port = atoi(v);
		else if (!strcmp(k, "--akid")) o.akid = v;
		else if (!strcmp(k, "--secret")) o.secret = v;
		else if (!strcmp(k, "--region")) o.region = v;
		else if (!strcmp(k, "--path")) o.path = v;
		else if (!strcmp(k, "--connections")) o.connections = atoi(v);
		else if (!strcmp(k, "--seconds")) o.seconds = atoi(v);
		else if (!strcmp(k, "--method")) o.method = v;
		else if (!strcmp(k, "--body")) o.body = v;
		else if (!strcmp(k, "--bearer")) o.bearer = v;
		else if (!strcmp(k, "--expect")) o.expect = atoi(v);
		else if (!strcmp(k, "--paths")) o.paths_file = v;
		else if (!strcmp(k, "--rate")) o.rate = atof(v);
	}
	if (o.paths_file) {
		FILE *f = fopen(o.paths_file, "r");
		char line[4096];
		while (f && fgets(line, sizeof(line), f)) {
			line[strcspn(line, "\r\n")] = '\0';
			if (!*line)
				continue;
			paths = realloc(paths, sizeof(char *) * (size_t)(n_paths + 1));
			paths[n_paths++] = strdup(line);
		}
		if (f)
			fclose(f);
		if (!o.path && n_paths)
			o.path = paths[0];
	}
	if (!o.expect)
		o.expect = strcmp(o.method, "POST") ? 200 : 201;
	bearer_header = o.bearer;
	if (!o.akid || !o.secret || !o.path || sodium_init() < 0) {
		fprintf(stderr, "usage: %s --akid K --secret S --path /p [--host H --port P --connections N --seconds T]\n", argv[0]);
		return 2;
	}
	snprintf(host_header, sizeof(host_header), "%s:%d", o.host, o.port);
	/* A request without a unique part is signed once and replayed; otherwise signed per request. */
	static char fixed[16384];
	size_t fixed_len = 0;
	if ((!o.body || (!strstr(o.body, "{n}") && !strstr(o.body, "{t}"))) && n_paths <= 1)
		fixed_len = build_request(&o, o.path, 0, fixed, sizeof(fixed));
	volatile int stop = 0;
	struct worker *w = calloc((size_t)o.connections, sizeof(*w));
	double t0 = now_s();
	for (int i = 0; i < o.connections; i++) {
		w[i] = (struct worker){.index = i, .req = fixed_len ? fixed : NULL, .req_len = fixed_len, .stop = &stop, .o = &o};
		pthread_create(&w[i].th, NULL, run, &w[i]);
	}
	sleep((unsigned)o.seconds);
	stop = 1;
	size_t total = 0;
	long errors = 0;
	for (int i = 0; i < o.connections; i++) {
		pthread_join(w[i].th, NULL);
		total += w[i].n;
		errors += w[i].errors;
	}
	double elapsed = now_s() - t0;
	double *all = malloc((total ? total : 1) * sizeof(double));
	size_t k = 0;
	for (int i = 0; i < o.connections; i++) {
		memcpy(all + k, w[i].lat, w[i].n * sizeof(double));
		k += w[i].n;
		free(w[i].lat);
	}
	qsort(all, total, sizeof(double), cmp);
	printf("connections=%d seconds=%.1f requests=%zu errors=%ld rps=%.0f p50_ms=%.2f p99_ms=%.2f\n", o.connections,
	       elapsed, total, errors, (double)total / elapsed, total ? all[total / 2] * 1e3 : 0,
	       total ? all[(size_t)((double)total * 0.99)] * 1e3 : 0);
	free(all);
	free(w);
	return errors && !total ? 1 : 0;
}
