/*
 * carillon-http-floor: the least an HTTP/1.1 keep-alive server can do per request on this box, to
 * measure the floor under Carillon's REST path (bench/send.sh's floor: line). One thread, one epoll
 * loop, no TLS, no auth, no JSON, no database: it reads each request to the end of its body and
 * answers with one write of a fixed "201 Created" whose headers and body are the size of
 * Carillon's SendChannelMessage answer. Per request that is one recv, one send and a share of one
 * epoll_wait: what any server that answers a request at a time over TCP must spend.
 *
 * With --database, the floor of a persisted send end to end (bench/send.sh's send floor: line):
 * each request is answered only once a batch that stores its rows has committed. The requests that
 * arrive while a batch is in flight wait for it and leave together as the next batch, one batch at
 * a time on one libpq connection, as Carillon's write lane does for one channel; a batch is one
 * prepared call of bench_ref.floor_batch(n, key) (bench/lib.sh lane_floor_setup: the message rows
 * and event rows a send stores, by plain INSERTs). No checks, no JSON, no notification. --call
 * names another function of (n, key) for the batch: bench_ref.floor_lane calls the write lane's
 * own statement (carillon_api.send_messages), which puts the lane's SQL behind a gateway that costs
 * nothing. --notify-after CHANNEL sends NOTIFY CHANNEL on a second connection once a batch has
 * committed, outside the batch's transaction (one at a time: the batches that commit while one is
 * in flight are covered by the next), to weigh a notification made after the commit against one
 * made in it (bench/lane-parts.sh).
 *
 *   carillon-http-floor --port P [--body-bytes 190] [--database CONNINFO [--call FUNCTION]
 *                       [--notify-after CHANNEL]]
 *
 * Runs until killed; the caller reads its CPU time from /proc/<pid>/stat.
 */
#include <errno.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define FLOOR_BUF 65536

struct floor_conn {
	int fd;
	int queued; /* its requests in the pending list or the batch in flight */
	int closed; /* the peer has gone: freed when nothing refers to it */
	int buried; /* on the list freed after the loop's turn */
	size_t have;
	char buf[FLOOR_BUF];
};

static char answer[2048];
static size_t answer_len;

/* The database mode's state: the requests waiting, the batch in flight (at most one), its key. */
#define FLOOR_QUEUE 8192
static PGconn *pg, *pg_notify_conn;
static const char *notify_channel;
static int notify_busy, notify_owed;
static struct floor_conn *pending[FLOOR_QUEUE], *batch[FLOOR_QUEUE];
static int n_pending, n_batch;
static long long batch_key;
/* Connections closed in this turn of the loop, freed at its end (a later event of the same turn
 * may still name one). */
static struct floor_conn *grave[FLOOR_QUEUE];
static int n_grave;

/* The length of the first complete request in c->buf, or 0 when it is not all there yet; -1 for
 * a request this server cannot take (too large). */
static long floor_request_len(const struct floor_conn *c)
{
	const char *eoh = memmem(c->buf, c->have, "\r\n\r\n", 4);
	if (!eoh)
		return c->have == FLOOR_BUF ? -1 : 0;
	size_t head = (size_t)(eoh - c->buf) + 4, body = 0;
	for (const char *p = c->buf; p && p < eoh; p = memchr(p, '\n', (size_t)(eoh - p))) {
		p += *p == '\n';
		if (!strncasecmp(p, "content-length:", 15))
			body = strtoul(p + 15, NULL, 10);
	}
	if (head + body > FLOOR_BUF)
		return -1;
	return c->have >= head + body ? (long)(head + body) : 0;
}

/* Reads what the socket has and answers every complete request; 0 to keep the connection. */
static int floor_serve(struct floor_conn *c)
{
	for (;;) {
		ssize_t n = recv(c->fd, c->buf + c->have, FLOOR_BUF - c->have, 0);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
			return -1;
		if (n < 0)
			return 0;
		c->have += (size_t)n;
		long len;
		while ((len = floor_request_len(c)) > 0) {
			if (pg) {
				if (n_pending == FLOOR_QUEUE)
					return -1;
				pending[n_pending++] = c;
				c->queued++;
			} else if (send(c->fd, answer, answer_len, MSG_NOSIGNAL) != (ssize_t)answer_len) {
				return -1;
			}
			memmove(c->buf, c->buf + len, c->have - (size_t)len);
			c->have -= (size_t)len;
		}
		if (len < 0)
			return -1;
	}
}

static void floor_close(struct floor_conn *c)
{
	if (!c->closed)
		close(c->fd); /* also leaves the epoll set */
	c->closed = 1;
	if (!c->queued && !c->buried && n_grave < FLOOR_QUEUE) {
		c->buried = 1;
		grave[n_grave++] = c;
	}
}

/* Sends the waiting requests as one batch when none is in flight. */
static void floor_batch_send(void)
{
	if (n_batch || !n_pending)
		return;
	memcpy(batch, pending, (size_t)n_pending * sizeof(*batch));
	n_batch = n_pending;
	n_pending = 0;
	char n_text[16], key_text[32];
	snprintf(n_text, sizeof(n_text), "%d", n_batch);
	snprintf(key_text, sizeof(key_text), "%lld", ++batch_key);
	const char *params[2] = {n_text, key_text};
	if (!PQsendQueryPrepared(pg, "floor_batch", 2, params, NULL, NULL, 0) || PQflush(pg)) {
		fprintf(stderr, "carillon-http-floor: %s", PQerrorMessage(pg));
		exit(1);
	}
}

/* The notification after a commit: sent now when none is in flight, else owed to the next. */
static void floor_notify(void)
{
	if (!pg_notify_conn)
		return;
	if (notify_busy) {
		notify_owed = 1;
		return;
	}
	const char *params[2] = {notify_channel, "0"};
	if (!PQsendQueryParams(pg_notify_conn, "select pg_notify($1, $2)", 2, NULL, params, NULL, NULL, 0) ||
	    PQflush(pg_notify_conn)) {
		fprintf(stderr, "carillon-http-floor: %s", PQerrorMessage(pg_notify_conn));
		exit(1);
	}
	notify_busy = 1;
	notify_owed = 0;
}

static void floor_notify_done(void)
{
	if (!PQconsumeInput(pg_notify_conn)) {
		fprintf(stderr, "carillon-http-floor: %s", PQerrorMessage(pg_notify_conn));
		exit(1);
	}
	PGresult *res;
	while (!PQisBusy(pg_notify_conn) && (res = PQgetResult(pg_notify_conn)))
		PQclear(res);
	if (PQisBusy(pg_notify_conn))
		return;
	notify_busy = 0;
	if (notify_owed)
		floor_notify();
}

/* The database's socket is readable: when the batch in flight has committed, the next leaves, then
 * the committed one's requests are answered. */
static void floor_batch_done(void)
{
	if (!PQconsumeInput(pg)) {
		fprintf(stderr, "carillon-http-floor: %s", PQerrorMessage(pg));
		exit(1);
	}
	PGresult *res;
	while (!PQisBusy(pg) && (res = PQgetResult(pg))) {
		if (PQresultStatus(res) != PGRES_TUPLES_OK) {
			fprintf(stderr, "carillon-http-floor: %s", PQresultErrorMessage(res));
			exit(1);
		}
		PQclear(res);
	}
	if (PQisBusy(pg) || !n_batch)
		return;
	static struct floor_conn *done[FLOOR_QUEUE];
	int n_done = n_batch;
	memcpy(done, batch, (size_t)n_done * sizeof(*done));
	n_batch = 0;
	floor_batch_send();
	floor_notify();
	for (int i = 0; i < n_done; i++) {
		struct floor_conn *c = done[i];
		c->queued--;
		if (c->closed) {
			floor_close(c);
			continue;
		}
		if (send(c->fd, answer, answer_len, MSG_NOSIGNAL) != (ssize_t)answer_len)
			floor_close(c);
	}
}

/* The database mode: one connection, its one statement prepared. */
static int floor_db_open(const char *conninfo, const char *call)
{
	char sql[256];
	snprintf(sql, sizeof(sql), "select %s($1::int, $2::bigint)", call);
	pg = PQconnectdb(conninfo);
	/* Without JIT, as Carillon's pool connects (src/db/pool.c): the planner's guesses for the
	 * batch's arrays would have every batch compiled. */
	PGresult *res = PQstatus(pg) == CONNECTION_OK ? PQexec(pg, "set jit = off") : NULL;
	if (res && PQresultStatus(res) == PGRES_COMMAND_OK) {
		PQclear(res);
		res = PQprepare(pg, "floor_batch", sql, 2, NULL);
	}
	int ok = res && PQresultStatus(res) == PGRES_COMMAND_OK;
	if (!ok)
		fprintf(stderr, "carillon-http-floor: %s", PQerrorMessage(pg));
	PQclear(res);
	/* Batch keys unique across servers and runs against the same tables: the process, the time,
	 * then a million batches of its own. */
	batch_key = ((long long)getpid() << 36) + ((long long)(time(NULL) & 0xffff) << 20);
	return ok && PQsetnonblocking(pg, 1) == 0 ? 0 : -1;
}

int main(int argc, char **argv)
{
	int port = 0, body_bytes = 190;
	const char *database = NULL, *call = "bench_ref.floor_batch";
	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--port"))
			port = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--body-bytes"))
			body_bytes = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--database"))
			database = argv[i + 1];
		else if (!strcmp(argv[i], "--call"))
			call = argv[i + 1];
		else if (!strcmp(argv[i], "--notify-after"))
			notify_channel = argv[i + 1];
	}
	if (port <= 0 || body_bytes < 2 || body_bytes > 1024 || strlen(call) > 128) {
		fprintf(stderr,
		        "usage: %s --port P [--body-bytes 2..1024] [--database CONNINFO [--call FUNCTION] "
		        "[--notify-after CHANNEL]]\n",
		        argv[0]);
		return 2;
	}
	if (database && floor_db_open(database, call))
		return 1;
	if (database && notify_channel) {
		pg_notify_conn = PQconnectdb(database);
		if (PQstatus(pg_notify_conn) != CONNECTION_OK || PQsetnonblocking(pg_notify_conn, 1)) {
			fprintf(stderr, "carillon-http-floor: %s", PQerrorMessage(pg_notify_conn));
			return 1;
		}
	}
	char body[1025];
	memset(body, 'x', (size_t)body_bytes);
	body[0] = '"';
	body[body_bytes - 1] = '"';
	body[body_bytes] = '\0';
	answer_len = (size_t)snprintf(answer, sizeof(answer),
	                              "HTTP/1.1 201 Created\r\ncontent-type: application/json\r\n"
	                              "x-amzn-requestid: 00000000-0000-4000-8000-000000000000\r\n"
	                              "content-length: %d\r\n\r\n%s",
	                              body_bytes, body);

	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
	                         .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) || listen(lfd, 1024)) {
		perror("carillon-http-floor: listen");
		return 1;
	}
	int ep = epoll_create1(0);
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
	epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
	static int pg_tag, notify_tag; /* the database sockets' epoll tags */
	if (pg) {
		struct epoll_event pev = {.events = EPOLLIN, .data.ptr = &pg_tag};
		epoll_ctl(ep, EPOLL_CTL_ADD, PQsocket(pg), &pev);
	}
	if (pg_notify_conn) {
		struct epoll_event nev = {.events = EPOLLIN, .data.ptr = &notify_tag};
		epoll_ctl(ep, EPOLL_CTL_ADD, PQsocket(pg_notify_conn), &nev);
	}
	struct epoll_event ready[256];
	for (;;) {
		int n = epoll_wait(ep, ready, 256, -1);
		for (int i = 0; i < n; i++) {
			if (ready[i].data.ptr == &pg_tag) {
				floor_batch_done();
				continue;
			}
			if (ready[i].data.ptr == &notify_tag) {
				floor_notify_done();
				continue;
			}
			struct floor_conn *c = ready[i].data.ptr;
			if (!c) { /* the listener */
				int fd;
				while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
					c = calloc(1, sizeof(*c));
					if (!c) {
						close(fd);
						continue;
					}
					c->fd = fd;
					setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
					struct epoll_event cev = {.events = EPOLLIN, .data.ptr = c};
					epoll_ctl(ep, EPOLL_CTL_ADD, fd, &cev);
				}
				continue;
			}
			if (!c->closed && floor_serve(c))
				floor_close(c);
		}
		if (pg)
			floor_batch_send();
		while (n_grave)
			free(grave[--n_grave]);
	}
}
