/*
 * carillon-ws-bench: holds many websocket sessions on one Carillon endpoint and measures what they
 * receive. Each session connects as one of the users listed in --users (one AppInstanceUser ARN per
 * line, round-robin), with a SigV4-presigned /connect URL signed by the given (root or admin) key,
 * exactly as amazon-chime-sdk-js signs it. One epoll loop, one process; run several processes for
 * more than ~19,000 sessions (the per-process open-file limit here is 20,000).
 *
 *   carillon-ws-bench --port 8080 --akid AKIA... --secret ... --users users.txt --sessions 1000 \
 *       [--seconds 10] [--host 127.0.0.1] [--ramp 500] [--bind 127.0.0.N]
 *
 * --bind gives the client sockets their own loopback source address: connections from one address
 * share the ephemeral port range (net.ipv4.ip_local_port_range, 28,232 ports by default), which
 * caps every generator process of a host at that many sessions in total.
 *
 * Prints when every session has its SESSION_ESTABLISHED (and the rate they were established at),
 * then after --seconds: frames received,
 * deliveries/s over the measuring window, and, for CREATE_CHANNEL_MESSAGE frames whose Content is
 * "t=<epoch microseconds>" (see rest_bench's {t}), the send-to-receive latency percentiles.
 *
 *   carillon-ws-bench --tcp-reference N [--bind 127.0.0.N]
 *
 * instead measures the reference a session's establishment is compared with: N loopback TCP
 * connects to a listener of this process, each accepted and both ends closed, one after the other;
 * prints tcp_connect_close_per_s.
 *
 *   carillon-ws-bench --send-floor N [--frame-bytes 770] [--seconds 2]
 *
 * instead measures the floor of a fan-out delivery: one send() of a pre-rendered frame to each of N
 * loopback TCP connections in turn (a forked child drains them), as a server delivering one event to
 * N sessions does at best; prints the sender's CPU time per send (send_cpu_us, user + system, from
 * getrusage) and the wall-clock sends/s.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "carillon/sigv4.h"
#include "carillon/util.h"

enum conn_state { C_IDLE, C_UPGRADING, C_OPEN, C_CLOSED };

struct conn {
	int fd;
	enum conn_state state;
	bool established;
	char *out;              /* pending bytes to send (upgrade request) */
	size_t out_len, out_off;
	unsigned char *in;
	size_t in_len, in_cap;
	int close_code;
};

static struct {
	const char *host, *akid, *secret, *region, *users_file, *bind_ip;
	int port, sessions, seconds, ramp, tcp_reference, send_floor, frame_bytes;
} o = {"127.0.0.1", NULL, NULL, "us-east-1", NULL, NULL, 8080, 100, 10, 500, 0, 0, 770};

static char **users;
static int n_users;
static long frames, established, closed_by_server, latency_n, latency_cap;
static double *latency;
static int64_t window_start_us;
static long frames_at_window_start;

static int64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void load_users(void)
{
	FILE *f = fopen(o.users_file, "r");
	char line[2048];
	while (f && fgets(line, sizeof(line), f)) {
		char *s = carillon_trim(line);
		if (!*s)
			continue;
		users = carillon_xrealloc(users, sizeof(char *) * (size_t)(n_users + 1));
		users[n_users++] = carillon_xstrdup(s);
	}
	if (f)
		fclose(f);
}

static char host_hdr[128];
static const char *hdr(void *ctx, const char *name) { return strcmp(name, "host") ? NULL : host_hdr; }

/* GET /connect?<presigned query> for one user. */
static char *upgrade_request(const char *user, int session_id)
{
	char amz_date[17], cred[256], query[8192];
	time_t t = time(NULL);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(amz_date, sizeof(amz_date), "%Y%m%dT%H%M%SZ", &tm);
	snprintf(cred, sizeof(cred), "%s/%.8s/%s/chime/aws4_request", o.akid, amz_date, o.region);
	char *ecred = carillon_pct_encode(cred, strlen(cred)), *euser = carillon_pct_encode(user, strlen(user));
	snprintf(query, sizeof(query),
		 "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=%s&X-Amz-Date=%s&X-Amz-Expires=300"
		 "&X-Amz-SignedHeaders=host&sessionId=%d&userArn=%s",
		 ecred, amz_date, session_id, euser);
	free(ecred);
	free(euser);
	struct carillon_sigv4_request sr = {.method = "GET", .raw_path = "/connect", .raw_query = query, .header = hdr,
					    .allow_query_auth = true};
	static struct carillon_sigv4_auth a;
	memset(&a, 0, sizeof(a));
	a.presigned = true;
	snprintf(a.access_key_id, sizeof(a.access_key_id), "%s", o.akid);
	memcpy(a.date, amz_date, 8);
	snprintf(a.region, sizeof(a.region), "%s", o.region);
	snprintf(a.service, sizeof(a.service), "chime");
	memcpy(a.amz_date, amz_date, 17);
	snprintf(a.signed_headers, sizeof(a.signed_headers), "host");
	a.expires = 300;
	carillon_sigv4_sign_auth(&sr, &a, o.secret);
	struct carillon_buf b = {0};
	unsigned char key[16];
	char key64[32];
	randombytes_buf(key, sizeof(key));
	sodium_bin2base64(key64, sizeof(key64), key, sizeof(key), sodium_base64_VARIANT_ORIGINAL);
	carillon_buf_appendf(&b,
			     "GET /connect?%s&X-Amz-Signature=%s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n"
			     "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: %s\r\n\r\n",
			     query, a.signature, host_hdr, key64);
	return b.data;
}

static void conn_close(struct conn *c, int epfd)
{
	if (c->state == C_CLOSED)
		return;
	epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	c->state = C_CLOSED;
	free(c->in);
	c->in = NULL;
	c->in_cap = c->in_len = 0;
}

static void send_pong(struct conn *c, const unsigned char *payload, size_t len)
{
	unsigned char f[2 + 4 + 125];
	if (len > 125)
		len = 125;
	f[0] = 0x8A;
	f[1] = (unsigned char)(0x80 | len);
	memset(f + 2, 0, 4); /* zero mask key: payload unchanged */
	memcpy(f + 6, payload, len);
	if (send(c->fd, f, 6 + len, MSG_NOSIGNAL) < 0)
		return;
}

static void on_text(const unsigned char *p, size_t len)
{
	frames++;
	if (!memmem(p, len, "CREATE_CHANNEL_MESSAGE", 22))
		return;
	const char *mark = memmem(p, len, "\\\"Content\\\":\\\"t=", 16);
	if (!mark)
		return;
	long long sent = strtoll(mark + 16, NULL, 10);
	if (latency_n == latency_cap) {
		latency_cap = latency_cap ? latency_cap * 2 : 65536;
		latency = carillon_xrealloc(latency, sizeof(double) * (size_t)latency_cap);
	}
	latency[latency_n++] = (double)(now_us() - sent) / 1000.0;
}

/* Parse as many complete frames as are buffered. */
static void parse_frames(struct conn *c, int epfd)
{
	size_t off = 0;
	while (c->in_len - off >= 2) {
		unsigned char *p = c->in + off;
		int opcode = p[0] & 0x0f;
		uint64_t len = p[1] & 0x7f;
		size_t hdr_len = 2;
		if (len == 126) {
			if (c->in_len - off < 4)
				break;
			len = (uint64_t)p[2] << 8 | p[3];
			hdr_len = 4;
		} else if (len == 127) {
			if (c->in_len - off < 10)
				break;
			len = 0;
			for (int i = 0; i < 8; i++)
				len = len << 8 | p[2 + i];
			hdr_len = 10;
		}
		if (c->in_len - off < hdr_len + len)
			break;
		unsigned char *payload = p + hdr_len;
		if (opcode == 1) {
			if (!c->established && memmem(payload, len, "SESSION_ESTABLISHED", 19)) {
				c->established = true;
				established++;
			} else {
				on_text(payload, len);
			}
		} else if (opcode == 9) {
			send_pong(c, payload, len);
		} else if (opcode == 8) {
			c->close_code = len >= 2 ? payload[0] << 8 | payload[1] : 1005;
			closed_by_server++;
			conn_close(c, epfd);
			return;
		}
		off += hdr_len + len;
	}
	memmove(c->in, c->in + off, c->in_len - off);
	c->in_len -= off;
}

static void on_readable(struct conn *c, int epfd)
{
	for (;;) {
		if (c->in_cap - c->in_len < 4096) {
			c->in_cap = c->in_cap ? c->in_cap * 2 : 8192;
			c->in = carillon_xrealloc(c->in, c->in_cap);
		}
		ssize_t n = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
			closed_by_server++;
			conn_close(c, epfd);
			return;
		}
		if (n < 0)
			return;
		c->in_len += (size_t)n;
		if (c->state == C_UPGRADING) {
			unsigned char *eoh = memmem(c->in, c->in_len, "\r\n\r\n", 4);
			if (!eoh)
				continue;
			if (c->in_len < 12 || memcmp(c->in + 9, "101", 3)) {
				conn_close(c, epfd);
				return;
			}
			size_t h = (size_t)(eoh + 4 - c->in);
			memmove(c->in, c->in + h, c->in_len - h);
			c->in_len -= h;
			c->state = C_OPEN;
		}
		parse_frames(c, epfd);
		if (c->state == C_CLOSED)
			return;
		/* Keep idle sessions small: give back a large, empty buffer. */
		if (!c->in_len && c->in_cap > 8192) {
			free(c->in);
			c->in = NULL;
			c->in_cap = 0;
		}
	}
}

static int open_conn(struct conn *c, int epfd, int i)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)o.port)};
	inet_pton(AF_INET, o.host, &sa.sin_addr);
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	if (c->fd < 0)
		return -1;
	int one = 1;
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (o.bind_ip) { /* each loopback source address has its own ~28k ephemeral ports */
		struct sockaddr_in src = {.sin_family = AF_INET};
		inet_pton(AF_INET, o.bind_ip, &src.sin_addr);
		if (bind(c->fd, (struct sockaddr *)&src, sizeof(src))) {
			close(c->fd);
			return -1;
		}
	}
	if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) && errno != EINPROGRESS) {
		close(c->fd);
		return -1;
	}
	c->out = upgrade_request(users[i % n_users], i);
	c->out_len = strlen(c->out);
	c->state = C_UPGRADING;
	struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
	return epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev);
}

static void on_writable(struct conn *c, int epfd)
{
	while (c->out && c->out_off < c->out_len) {
		ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno != EAGAIN)
				conn_close(c, epfd);
			return;
		}
		c->out_off += (size_t)n;
	}
	free(c->out);
	c->out = NULL;
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
	epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

/* The reference: what one loopback TCP connection costs both ends, from connect to close. */
static int tcp_reference(int n)
{
	int l = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t sl = sizeof(sa);
	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	if (l < 0 || bind(l, (struct sockaddr *)&sa, sizeof(sa)) || listen(l, 4096) ||
	    getsockname(l, (struct sockaddr *)&sa, &sl)) {
		perror("tcp reference listener");
		return 1;
	}
	int64_t t0 = now_us();
	int done = 0;
	for (int i = 0; i < n; i++) {
		int c = socket(AF_INET, SOCK_STREAM, 0);
		if (o.bind_ip) {
			struct sockaddr_in src = {.sin_family = AF_INET};
			inet_pton(AF_INET, o.bind_ip, &src.sin_addr);
			bind(c, (struct sockaddr *)&src, sizeof(src));
		}
		if (c < 0 || connect(c, (struct sockaddr *)&sa, sizeof(sa))) {
			perror("tcp reference connect");
			if (c >= 0)
				close(c);
			break;
		}
		int a = accept4(l, NULL, NULL, SOCK_NONBLOCK);
		close(c);
		if (a >= 0) {
			close(a);
			done++;
		}
	}
	double secs = (double)(now_us() - t0) / 1e6;
	printf("tcp_reference connects=%d seconds=%.3f tcp_connect_close_per_s=%.0f\n", done, secs, done / secs);
	close(l);
	return done == n ? 0 : 1;
}

static int64_t cpu_us(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (int64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000 + ru.ru_utime.tv_usec + ru.ru_stime.tv_usec;
}

/* The child of --send-floor: read everything from the accepted connections until they close. */
static void drain(int l, int n)
{
	int epfd = epoll_create1(0);
	for (int i = 0; i < n; i++) {
		int a = accept4(l, NULL, NULL, SOCK_NONBLOCK);
		if (a < 0)
			_exit(1);
		struct epoll_event ev = {.events = EPOLLIN, .data.fd = a};
		epoll_ctl(epfd, EPOLL_CTL_ADD, a, &ev);
	}
	static char buf[1 << 16];
	struct epoll_event evs[256];
	for (int open = n; open > 0;) {
		int k = epoll_wait(epfd, evs, 256, -1);
		for (int i = 0; i < k; i++) {
			ssize_t r;
			while ((r = read(evs[i].data.fd, buf, sizeof(buf))) > 0)
				;
			if (!r) {
				close(evs[i].data.fd);
				open--;
			}
		}
	}
	_exit(0);
}

/* The floor of a fan-out delivery: one send of a pre-rendered frame per connection, round-robin. */
static int send_floor(int n)
{
	int l = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t sl = sizeof(sa);
	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	if (l < 0 || bind(l, (struct sockaddr *)&sa, sizeof(sa)) || listen(l, 4096) ||
	    getsockname(l, (struct sockaddr *)&sa, &sl)) {
		perror("send floor listener");
		return 1;
	}
	pid_t child = fork(); /* before connecting: it accepts while we connect (n may exceed the backlog) */
	if (!child)
		drain(l, n);
	close(l);
	int *fds = carillon_xcalloc((size_t)n, sizeof(*fds));
	for (int i = 0; i < n; i++) {
		fds[i] = socket(AF_INET, SOCK_STREAM, 0);
		if (fds[i] < 0 || connect(fds[i], (struct sockaddr *)&sa, sizeof(sa))) {
			perror("send floor connect");
			return 1;
		}
		int one = 1;
		setsockopt(fds[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		fcntl(fds[i], F_SETFL, O_NONBLOCK);
	}
	/* a server frame: FIN|text, a 16-bit length, then the payload */
	size_t len = (size_t)(o.frame_bytes > 4 ? o.frame_bytes : 5);
	unsigned char *frame = carillon_xcalloc(1, len);
	frame[0] = 0x81;
	frame[1] = 126;
	frame[2] = (unsigned char)((len - 4) >> 8);
	frame[3] = (unsigned char)(len - 4);
	memset(frame + 4, 'x', len - 4);
	usleep(200 * 1000); /* the child accepts them all */
	long sends = 0, full = 0;
	int64_t t0 = now_us(), c0 = cpu_us(), end = t0 + (int64_t)o.seconds * 1000000;
	while (now_us() < end)
		for (int i = 0; i < n; i++) {
			if (send(fds[i], frame, len, MSG_NOSIGNAL) == (ssize_t)len)
				sends++;
			else
				full++;
		}
	int64_t c1 = cpu_us(), t1 = now_us();
	for (int i = 0; i < n; i++)
		close(fds[i]);
	waitpid(child, NULL, 0);
	printf("send_floor connections=%d frame_bytes=%zu sends=%ld would_block=%ld send_cpu_us=%.2f sends_per_s=%.0f\n", n,
	       len, sends, full, sends ? (double)(c1 - c0) / (double)sends : 0.0,
	       (double)sends * 1e6 / (double)(t1 - t0));
	free(fds);
	free(frame);
	return sends ? 0 : 1;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	for (int i = 1; i + 1 < argc; i += 2) {
		const char *k = argv[i], *v = argv[i + 1];
		if (!strcmp(k, "--host")) o.host = v;
		else if (!strcmp(k, "--port")) o.port = atoi(v);
		else if (!strcmp(k, "--akid")) o.akid = v;
		else if (!strcmp(k, "--secret")) o.secret = v;
		else if (!strcmp(k, "--region")) o.region = v;
		else if (!strcmp(k, "--users")) o.users_file = v;
		else if (!strcmp(k, "--sessions")) o.sessions = atoi(v);
		else if (!strcmp(k, "--seconds")) o.seconds = atoi(v);
		else if (!strcmp(k, "--ramp")) o.ramp = atoi(v);
		else if (!strcmp(k, "--bind")) o.bind_ip = v;
		else if (!strcmp(k, "--tcp-reference")) o.tcp_reference = atoi(v);
		else if (!strcmp(k, "--send-floor")) o.send_floor = atoi(v);
		else if (!strcmp(k, "--frame-bytes")) o.frame_bytes = atoi(v);
	}
	if (o.tcp_reference > 0)
		return tcp_reference(o.tcp_reference);
	if (o.send_floor > 0) {
		if (o.seconds > 5)
			o.seconds = 2;
		return send_floor(o.send_floor);
	}
	if (!o.akid || !o.secret || !o.users_file || sodium_init() < 0) {
		fprintf(stderr, "usage: %s --akid K --secret S --users FILE [--sessions N --seconds T --port P]\n", argv[0]);
		return 2;
	}
	load_users();
	if (!n_users) {
		fprintf(stderr, "no users in %s\n", o.users_file);
		return 2;
	}
	struct rlimit rl;
	if (!getrlimit(RLIMIT_NOFILE, &rl)) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	snprintf(host_hdr, sizeof(host_hdr), "%s:%d", o.host, o.port);
	int epfd = epoll_create1(0);
	struct conn *conns = carillon_xcalloc((size_t)o.sessions, sizeof(*conns));
	int opened = 0;
	int64_t t0 = now_us(), t_established = 0, deadline = 0;
	struct epoll_event evs[256];
	for (;;) {
		/* Open in waves: at most --ramp handshakes in flight. */
		while (opened < o.sessions && opened - established - closed_by_server < o.ramp) {
			if (open_conn(&conns[opened], epfd, opened))
				conns[opened].state = C_CLOSED;
			opened++;
		}
		int n = epoll_wait(epfd, evs, 256, 100);
		for (int i = 0; i < n; i++) {
			struct conn *c = evs[i].data.ptr;
			if (evs[i].events & EPOLLOUT)
				on_writable(c, epfd);
			if (c->state != C_CLOSED && (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
				on_readable(c, epfd);
		}
		if (!t_established && established + closed_by_server >= o.sessions) {
			t_established = now_us();
			double took = (double)(t_established - t0) / 1e6;
			printf("established=%ld refused_or_closed=%ld in %.2f s sessions_per_s=%.0f\n", established,
			       closed_by_server, took, (double)established / took);
			fflush(stdout);
			deadline = t_established + (int64_t)o.seconds * 1000000;
			window_start_us = t_established;
			frames_at_window_start = frames;
		}
		if (deadline && now_us() >= deadline)
			break;
		if (!deadline && now_us() - t0 > 600 * 1000000LL) {
			fprintf(stderr, "gave up waiting for sessions: %ld established\n", established);
			break;
		}
	}
	double window = (double)(now_us() - window_start_us) / 1e6;
	qsort(latency, (size_t)latency_n, sizeof(double), cmp);
	printf("frames=%ld deliveries_per_s=%.0f closed_by_server=%ld latency_n=%ld", frames,
	       (double)(frames - frames_at_window_start) / window, closed_by_server, latency_n);
	if (latency_n)
		printf(" p50_ms=%.2f p99_ms=%.2f p999_ms=%.2f max_ms=%.2f", latency[latency_n / 2],
		       latency[(long)((double)latency_n * 0.99)], latency[(long)((double)latency_n * 0.999)],
		       latency[latency_n - 1]);
	printf("\n");
	return 0;
}
