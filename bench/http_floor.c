/*
 * carillon-http-floor: the least an HTTP/1.1 keep-alive server can do per request on this box, to
 * measure the floor under Carillon's REST path (bench/send.sh's floor: line). One thread, one epoll
 * loop, no TLS, no auth, no JSON, no database: it reads each request to the end of its body and
 * answers with one write of a fixed "201 Created" whose headers and body are the size of
 * Carillon's SendChannelMessage answer. Per request that is one recv, one send and a share of one
 * epoll_wait: what any server that answers a request at a time over TCP must spend.
 *
 *   carillon-http-floor --port P [--body-bytes 190]
 *
 * Runs until killed; the caller reads its CPU time from /proc/<pid>/stat.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define FLOOR_BUF 65536

struct floor_conn {
	int fd;
	size_t have;
	char buf[FLOOR_BUF];
};

static char answer[2048];
static size_t answer_len;

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
			if (send(c->fd, answer, answer_len, MSG_NOSIGNAL) != (ssize_t)answer_len)
				return -1;
			memmove(c->buf, c->buf + len, c->have - (size_t)len);
			c->have -= (size_t)len;
		}
		if (len < 0)
			return -1;
	}
}

int main(int argc, char **argv)
{
	int port = 0, body_bytes = 190;
	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--port"))
			port = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--body-bytes"))
			body_bytes = atoi(argv[i + 1]);
	}
	if (port <= 0 || body_bytes < 2 || body_bytes > 1024) {
		fprintf(stderr, "usage: %s --port P [--body-bytes 2..1024]\n", argv[0]);
		return 2;
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
	struct epoll_event ready[256];
	for (;;) {
		int n = epoll_wait(ep, ready, 256, -1);
		for (int i = 0; i < n; i++) {
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
			if (floor_serve(c)) {
				close(c->fd); /* also leaves the epoll set */
				free(c);
			}
		}
	}
}
