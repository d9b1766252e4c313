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
 *   --path] [--rate R: at most R requests/s in total, paced per connection] [--threads 2]
 *
 * The connections are shared by --threads threads (default 2, as pgbench -j 2 in the references),
 * each an epoll loop over its connections with one request in flight per connection: the load
 * generator runs on the same two cores as the server and the database, and a thread per connection
 * spent most of its CPU on switching threads (63 µs a request against 22 µs here, measured).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "carillon/sigv4.h"

struct opts {
	const char *host, *akid, *secret, *region, *path, *method, *body, *bearer, *paths_file;
	int port, connections, seconds, expect, threads;
	double rate;
};

static char **paths;
static int n_paths;

/* One connection: one request in flight at a time. */
struct conn {
	int fd, index;
	unsigned long n;   /* requests built on it so far (the {n} of the next) */
	size_t have;       /* bytes of the answer read */
	double t0, next;   /* when the request in flight was sent; when the next may be (paced) */
	int in_flight;
	char buf[65536];
};

struct worker {
	pthread_t th;
	int index, n_conns;
	struct conn *conns;
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

/* The status of the complete answer in c->buf, 0 while it is incomplete. */
static int answer_status(struct conn *c)
{
	c->buf[c->have] = '\0';
	char *eoh = strstr(c->buf, "\r\n\r\n");
	if (!eoh)
		return 0;
	char *cl = strcasestr(c->buf, "content-length:");
	size_t body = cl && cl < eoh ? strtoul(cl + 15, NULL, 10) : 0;
	if (c->have < (size_t)(eoh + 4 - c->buf) + body)
		return 0;
	int status = atoi(c->buf + 9);
	return status > 0 ? status : -1;
}

static size_t build_request(const struct opts *o, const char *path, unsigned long n, char *out, size_t cap);
static double now_s(void);

static int conn_open(struct worker *w, struct conn *c, int ep)
{
	c->fd = connect_to(w->o);
	c->have = 0;
	c->in_flight = 0;
	if (c->fd < 0)
		return -1;
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
	return epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
}

/* Sends c's next request (signed now unless the request is fixed). */
static int conn_send(struct worker *w, struct conn *c)
{
	static _Thread_local char req[16384];
	const char *msg = w->req;
	size_t len = w->req_len;
	if (!msg) { /* signed per request */
		const char *path = n_paths ? paths[((unsigned long)c->index + c->n) % (unsigned long)n_paths] : w->o->path;
		len = build_request(w->o, path, (unsigned long)c->index * 100000000UL + c->n, req, sizeof(req));
		c->n++;
		msg = req;
	}
	c->t0 = now_s();
	c->have = 0;
	c->in_flight = 1;
	return send(c->fd, msg, len, MSG_NOSIGNAL) == (ssize_t)len ? 0 : -1;
}

/* Reads what c's socket has; on a complete answer records it and sends the next request now or
 * (paced) schedules it. -1 when the connection must be opened again. */
static int conn_read(struct worker *w, struct conn *c, double interval)
{
	ssize_t got = recv(c->fd, c->buf + c->have, sizeof(c->buf) - c->have - 1, MSG_DONTWAIT);
	if (got == 0 || (got < 0 && errno != EAGAIN && errno != EINTR) || !c->in_flight)
		return -1;
	if (got < 0)
		return 0;
	c->have += (size_t)got;
	int status = answer_status(c);
	if (!status)
		return c->have + 1 < sizeof(c->buf) ? 0 : -1;
	c->in_flight = 0;
	if (status != w->o->expect) {
		if (w->errors < 3)
			fprintf(stderr, "status %d: %.300s\n", status, c->buf);
		w->errors++;
	} else {
		if (w->n == w->cap) {
			w->cap = w->cap ? w->cap * 2 : 65536;
			w->lat = realloc(w->lat, w->cap * sizeof(double));
		}
		w->lat[w->n++] = now_s() - c->t0;
	}
	if (interval > 0) {
		c->next += interval;
		return 0;
	}
	return conn_send(w, c);
}

static void *run(void *arg)
{
	struct worker *w = arg;
	int ep = epoll_create1(0);
	/* Paced connections start staggered across the interval: clients are not synchronised, and a
	 * burst of every connection at once would measure the burst, not the offered rate. */
	double interval = w->o->rate > 0 ? w->o->connections / w->o->rate : 0, start = now_s();
	for (int i = 0; i < w->n_conns; i++) {
		struct conn *c = &w->conns[i];
		c->next = start + interval * c->index / (w->o->connections ? w->o->connections : 1);
		if (conn_open(w, c, ep) || (interval <= 0 && conn_send(w, c)))
			w->errors++;
	}
	struct epoll_event ready[64];
	while (!*w->stop) {
		/* Paced: send what is due, and sleep until the next one is. */
		double wait = 0.1;
		if (interval > 0) {
			double now = now_s();
			for (int i = 0; i < w->n_conns; i++) {
				struct conn *c = &w->conns[i];
				if (c->in_flight || c->fd < 0)
					continue;
				if (c->next <= now) {
					if (conn_send(w, c))
						w->errors++;
				} else if (c->next - now < wait) {
					wait = c->next - now;
				}
			}
		}
		struct timespec ts = {(time_t)wait, (long)((wait - (double)(time_t)wait) * 1e9)};
		int n = epoll_pwait2(ep, ready, 64, &ts, NULL);
		for (int i = 0; i < n; i++) {
			struct conn *c = ready[i].data.ptr;
			if (conn_read(w, c, interval) == 0)
				continue;
			if (c->in_flight) {
				if (w->errors < 3)
					fprintf(stderr, "connection %d: closed or failed with a request in flight\n", c->index);
				w->errors++;
			}
			close(c->fd);
			if (conn_open(w, c, ep) || (interval <= 0 && conn_send(w, c)))
				w->errors++;
		}
	}
	for (int i = 0; i < w->n_conns; i++)
		if (w->conns[i].fd >= 0)
			close(w->conns[i].fd);
	close(ep);
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
	struct opts o = {"127.0.0.1", NULL, NULL, "us-east-1", NULL, "GET", NULL, NULL, NULL, 8080, 16, 10, 0, 2, 0};
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
		else if (!strcmp(k, "--threads")) o.threads = atoi(v);
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
	if (o.threads < 1)
		o.threads = 1;
	if (o.threads > o.connections)
		o.threads = o.connections;
	struct worker *w = calloc((size_t)o.threads, sizeof(*w));
	struct conn *conns = calloc((size_t)o.connections, sizeof(*conns));
	double t0 = now_s();
	for (int i = 0; i < o.threads; i++) {
		/* thread i takes a contiguous share of the connections */
		w[i] = (struct worker){.index = i, .conns = conns + (size_t)i * (size_t)o.connections / (size_t)o.threads,
				       .n_conns = (i + 1) * o.connections / o.threads - i * o.connections / o.threads,
				       .req = fixed_len ? fixed : NULL, .req_len = fixed_len, .stop = &stop, .o = &o};
		for (int k = 0; k < w[i].n_conns; k++)
			w[i].conns[k].index = i * o.connections / o.threads + k;
		pthread_create(&w[i].th, NULL, run, &w[i]);
	}
	sleep((unsigned)o.seconds);
	stop = 1;
	size_t total = 0;
	long errors = 0;
	for (int i = 0; i < o.threads; i++) {
		pthread_join(w[i].th, NULL);
		total += w[i].n;
		errors += w[i].errors;
	}
	double elapsed = now_s() - t0;
	double *all = malloc((total ? total : 1) * sizeof(double));
	size_t k = 0;
	for (int i = 0; i < o.threads; i++) {
		memcpy(all + k, w[i].lat, w[i].n * sizeof(double));
		k += w[i].n;
		free(w[i].lat);
	}
	qsort(all, total, sizeof(double), cmp);
	/* The load generator's own CPU (signing, syscalls, thread switches) per request: it runs on the
	 * same cores as the server and the database, so it is part of every budget. */
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	double cpu_s = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
	               (double)ru.ru_stime.tv_usec / 1e6;
	printf("connections=%d seconds=%.1f requests=%zu errors=%ld rps=%.0f p50_ms=%.2f p99_ms=%.2f client_cpu_us=%.1f\n",
	       o.connections, elapsed, total, errors, (double)total / elapsed, total ? all[total / 2] * 1e3 : 0,
	       total ? all[(size_t)((double)total * 0.99)] * 1e3 : 0, total ? cpu_s * 1e6 / (double)total : 0);
	free(all);
	free(w);
	free(conns);
	return errors && !total ? 1 : 0;
}
