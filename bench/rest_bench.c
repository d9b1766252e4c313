/*
 * carillon-rest-bench: a closed-loop HTTP/1.1 keep-alive load generator for one SigV4-signed request.
 * The request is signed once (valid for the server's clock-skew window) and sent over N connections,
 * one thread each, for a fixed time; prints requests/s and latency percentiles.
 *
 *   carillon-rest-bench --host 127.0.0.1 --port 8080 --akid AKIA... --secret ... \
 *       --path /app-instance-users/<url-encoded arn> [--connections 16] [--seconds 10]
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
	const char *host, *akid, *secret, *region, *path;
	int port, connections, seconds;
};

struct worker {
	pthread_t th;
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

static void *run(void *arg)
{
	struct worker *w = arg;
	char buf[65536];
	int fd = connect_to(w->o);
	while (!*w->stop && fd >= 0) {
		double t0 = now_s();
		if (send(fd, w->req, w->req_len, 0) != (ssize_t)w->req_len)
			break;
		int status = read_response(fd, buf, sizeof(buf));
		if (status != 200) {
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

static const char *host_header;
static const char *hdr(void *ctx, const char *name)
{
	if (!strcmp(name, "host"))
		return host_header;
	if (!strcmp(name, "x-amz-date"))
		return ctx;
	return NULL;
}

int main(int argc, char **argv)
{
	struct opts o = {"127.0.0.1", NULL, NULL, "us-east-1", NULL, 8080, 16, 10};
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
	}
	if (!o.akid || !o.secret || !o.path || sodium_init() < 0) {
		fprintf(stderr, "usage: %s --akid K --secret S --path /p [--host H --port P --connections N --seconds T]\n", argv[0]);
		return 2;
	}
	char host[128], amz_date[17];
	snprintf(host, sizeof(host), "%s:%d", o.host, o.port);
	host_header = host;
	time_t t = time(NULL);
	strftime(amz_date, sizeof(amz_date), "%Y%m%dT%H%M%SZ", gmtime(&t));
	struct carillon_sigv4_request sr = {"GET", o.path, "", hdr, amz_date, NULL, 0};
	static struct carillon_sigv4_auth a;
	snprintf(a.access_key_id, sizeof(a.access_key_id), "%s", o.akid);
	memcpy(a.date, amz_date, 8);
	snprintf(a.region, sizeof(a.region), "%s", o.region);
	snprintf(a.service, sizeof(a.service), "chime");
	memcpy(a.amz_date, amz_date, 17);
	snprintf(a.signed_headers, sizeof(a.signed_headers), "host;x-amz-date");
	carillon_sigv4_sign(&sr, &a, o.secret);
	char req[8192];
	int len = snprintf(req, sizeof(req),
			   "GET %s HTTP/1.1\r\nHost: %s\r\nX-Amz-Date: %s\r\nAuthorization: AWS4-HMAC-SHA256 "
			   "Credential=%s/%.8s/%s/chime/aws4_request, SignedHeaders=host;x-amz-date, Signature=%s\r\n\r\n",
			   o.path, host, amz_date, o.akid, amz_date, o.region, a.signature);
	volatile int stop = 0;
	struct worker *w = calloc((size_t)o.connections, sizeof(*w));
	double t0 = now_s();
	for (int i = 0; i < o.connections; i++) {
		w[i] = (struct worker){.req = req, .req_len = (size_t)len, .stop = &stop, .o = &o};
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
