/*
 * One process = one libuv event loop. libwebsockets runs on it (LWS_SERVER_OPTION_LIBUV with a
 * foreign loop), the listening socket is ours (SO_REUSEPORT, so several processes can share a port
 * on Debian's lws 4.1.6, whose listen-share option does not set it) and accepted sockets are
 * adopted into the lws vhost. libpq sockets are watched on the same loop (db/pool.c).
 *
 * SIGTERM/SIGINT: stop accepting, let in-flight requests finish (bounded by the grace period),
 * then close everything and return.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/prctl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <libwebsockets.h>
#include <uv.h>

#include "carillon/api.h"
#include "carillon/config.h"
#include "carillon/db.h"
#include "carillon/http.h"
#include "carillon/janitor.h"
#include "carillon/outbound.h"
#include "carillon/outbox.h"
#include "carillon/flows.h"
#include "carillon/push.h"
#include "carillon/streaming.h"
#include "carillon/keys.h"
#include "carillon/realtime.h"
#include "carillon/log.h"
#include "carillon/metrics.h"
#include "carillon/metrics_endpoint.h"
#include "carillon/privdrop.h"
#include "carillon/server.h"
#include "carillon/supervisor.h"
#include "carillon/util.h"

static struct {
	uv_loop_t loop;
	struct lws_context *ctx;
	struct lws_vhost *vh;
	int listen_fd;
	uv_poll_t listen_poll;
	uv_signal_t sig_term, sig_int, sig_hup;
	uv_timer_t drain;
	uv_timer_t lag;          /* carillon_loop_lag_seconds: a timer's lateness, every LAG_EVERY_MS */
	uint64_t lag_due_ns;
	int64_t drain_deadline_ms;
	bool stopping;
	int exit_status;
	int given_fd;            /* a listening socket handed over by the supervisor, or -1 */
	int worker_index;        /* which worker of --workers N (0 when alone) */
} srv = {.listen_fd = -1, .given_fd = -1};

/* REST on "http"; websocket upgrades carry no subprotocol, so "carillon-session" is made the
 * vhost's default protocol (pvo "default"). */
static struct lws_protocols protocols[] = {
	{"http", carillon_http_callback, 0, 0, 0, NULL, 0},
	{"carillon-session", carillon_session_callback, 0, 1024, 0, NULL, 0},
	{NULL, NULL, 0, 0, 0, NULL, 0},
};

/* No lws-side validity timers: lws 4.1 keeps them in one sorted list (O(connections) per insert,
 * at every frame sent or received); keepalive is ours (realtime/session.c), one loop timer. */
static const lws_retry_bo_t no_validity_timers = {.secs_since_valid_ping = 0, .secs_since_valid_hangup = 0};

static const struct lws_protocol_vhost_options session_default = {NULL, NULL, "default", "1"};
static const struct lws_protocol_vhost_options session_pvo = {NULL, &session_default, "carillon-session", ""};



static void lws_log_emit(int level, const char *line)
{
	/* lws may quote request bytes (a URI, a header): logged as valid UTF-8 without control
	 * characters, so a client cannot forge log lines. */
	char buf[1024], clean[1024];
	snprintf(buf, sizeof(buf), "%s", line);
	char *trimmed = carillon_trim(buf);
	carillon_utf8_sanitize(clean, sizeof(clean), trimmed, strlen(trimmed));
	const char *s = clean;
	carillon_log(level & LLL_ERR ? CARILLON_LOG_ERR : level & LLL_WARN ? CARILLON_LOG_WARN : CARILLON_LOG_INFO,
		     "lws: %s", s);
}

static int open_listener(const char *addr)
{
	char host[256], port[16];
	if (carillon_split_host_port(addr, host, sizeof(host), port, sizeof(port))) {
		log_err("CARILLON_LISTEN must be host:port, not '%s'", addr);
		return -1;
	}
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *ai;
	int rc = getaddrinfo(*host ? host : NULL, port, &hints, &ai);
	if (rc) {
		log_err("cannot resolve %s: %s", addr, gai_strerror(rc));
		return -1;
	}
	int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1;
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) ||
	    bind(fd, ai->ai_addr, ai->ai_addrlen) || listen(fd, 4096)) {
		log_err("cannot listen on %s: %s", addr, strerror(errno));
		if (fd >= 0)
			close(fd);
		freeaddrinfo(ai);
		return -1;
	}
	freeaddrinfo(ai);
	return fd;
}

int carillon_server_listen_socket(void) { return open_listener(carillon_cfg.listen); }
void carillon_server_use_listen_fd(int fd, int index)
{
	srv.given_fd = fd;
	srv.worker_index = index;
}

static void on_accept(uv_poll_t *h, int status, int events)
{
	for (int i = 0; i < 256 && !srv.stopping; i++) {
		int fd = accept4(srv.listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
				log_warn("accept: %s", strerror(errno));
			return;
		}
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		struct lws *wsi = lws_adopt_socket_vhost(srv.vh, fd);
		if (!wsi) {
			log_warn("could not adopt a connection (connection limit?)");
			continue;
		}
		/* A connection that sends nothing holds no header table but a descriptor: it too has
		 * the header timeout to start its request (lws replaces this timeout with the same one
		 * when the first bytes take a header table). */
		lws_set_timeout(wsi, PENDING_TIMEOUT_AWAITING_CLIENT_HS_SEND, (int)carillon_cfg.header_timeout_seconds);
	}
}

static void close_cb(uv_handle_t *h) { (void)h; }

static void finish_shutdown(void)
{
	uv_timer_stop(&srv.drain);
	uv_close((uv_handle_t *)&srv.drain, close_cb);
	uv_timer_stop(&srv.lag);
	uv_close((uv_handle_t *)&srv.lag, close_cb);
	uv_close((uv_handle_t *)&srv.sig_term, close_cb);
	uv_close((uv_handle_t *)&srv.sig_int, close_cb);
	uv_close((uv_handle_t *)&srv.sig_hup, close_cb);
	carillon_metrics_server_stop();
	carillon_janitor_stop();
	carillon_outbox_stop();  /* before outbound: cancelled deliveries complete as retries */
	carillon_streaming_stop();
	carillon_flows_shutdown();
	carillon_outbound_shutdown();
	carillon_fcm_shutdown();
	carillon_keys_stop();
	carillon_api_on_batch_events(NULL);
	carillon_listener_stop();
	carillon_sessions_stop();
	carillon_db_shutdown();
	carillon_push_shutdown(); /* after the database: its pending reads have been answered */
	carillon_http_writes_stop();
	lws_context_destroy(srv.ctx);
	srv.ctx = NULL;
}

static void drain_tick(uv_timer_t *t)
{
	static int quiet_ticks;
	quiet_ticks = carillon_http_in_flight() || carillon_sessions_open() ? 0 : quiet_ticks + 1;
	/* Two quiet ticks: the last replies have been written. */
	if (quiet_ticks >= 2 || carillon_now_ms() >= srv.drain_deadline_ms)
		finish_shutdown();
}

/* How late the loop runs a timer: the time a ready connection waits while one turn's callbacks
 * run (a fan-out slice, a burst of outbound answers, a database result). Unref'd: it never keeps
 * the loop alive. */
#define LAG_EVERY_MS 100
static void lag_tick(uv_timer_t *t)
{
	(void)t;
	uint64_t now = uv_hrtime();
	if (srv.lag_due_ns)
		carillon_metrics_loop_lag(now > srv.lag_due_ns ? (double)(now - srv.lag_due_ns) / 1e9 : 0);
	srv.lag_due_ns = now + (uint64_t)LAG_EVERY_MS * 1000000u;
}

static void on_signal(uv_signal_t *h, int signum)
{
	if (srv.stopping)
		return;
	srv.stopping = true;
	log_notice("received %s: stopping (in flight: %u)", signum == SIGTERM ? "SIGTERM" : "SIGINT",
		   carillon_http_in_flight());
	uv_poll_stop(&srv.listen_poll);
	uv_close((uv_handle_t *)&srv.listen_poll, close_cb);
	close(srv.listen_fd);
	srv.listen_fd = -1;
	srv.drain_deadline_ms = carillon_now_ms() + carillon_cfg.shutdown_grace_seconds * 1000;
	carillon_sessions_close_all(1001, "Going away");
	uv_timer_start(&srv.drain, drain_tick, 50, 50);
}

/* SIGHUP (forwarded by the supervisor too): reopen the log file (rotation); it must not kill. */
static void on_hup(uv_signal_t *h, int signum)
{
	log_notice("received SIGHUP");
	carillon_log_reopen();
}

static void raise_fd_limit(void)
{
	struct rlimit rl;
	if (!getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static int create_lws_context(void)
{
	void *foreign_loops[1] = {&srv.loop};
	struct lws_context_creation_info info;
	memset(&info, 0, sizeof(info));
	protocols[0].per_session_data_size = carillon_http_pss_size();
	protocols[1].per_session_data_size = carillon_session_pss_size();
	info.pvo = &session_pvo;
	info.retry_and_idle_policy = &no_validity_timers;
	if (*carillon_cfg.tls_cert) {
		/* Adopted sockets get TLS from the vhost (lws_adopt_socket_vhost allows SSL). */
		info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
		info.ssl_cert_filepath = carillon_cfg.tls_cert;
		info.ssl_private_key_filepath = carillon_cfg.tls_key;
		/*
		 * HTTP/1.1 only, never h2: Debian's lws 4.1 drops every header field it has no token for
		 * when it decodes an HTTP/2 request (its HPACK decoder keeps only the ~90 names it knows;
		 * lws keeps the others only since 5.0), and those are the x-amz-* headers SigV4 signs
		 * (x-amz-date, x-amz-security-token, x-amz-content-sha256) and x-amz-chime-bearer. Offering
		 * h2 made browsers, which prefer it, fail every signed call. Browsers fall back to
		 * HTTP/1.1 on their own, websockets included (docs/web-chat.md).
		 */
		info.alpn = "http/1.1";
	}

	info.options |= LWS_SERVER_OPTION_LIBUV;
	info.foreign_loops = foreign_loops;
	info.port = CONTEXT_PORT_NO_LISTEN_SERVER;
	info.protocols = protocols;
	info.vhost_name = "carillon";
	/*
	 * Request heads. lws parses a head into a header table ("ah": 16 KiB of data plus ~1 KiB of
	 * indexes) taken from a pool when the first bytes arrive and given back when the head has
	 * been handled; with the pool in use, new connections wait for a table. A client holding one
	 * has timeout_secs_ah_idle to complete its head (CARILLON_HEADER_TIMEOUT_SECONDS; lws's 10 s
	 * default let 256 trickling clients stall every other client for 10 s). Tables are allocated
	 * on demand and freed when idle, so the pool size (CARILLON_HEADER_POOL) is a bound, not a
	 * reservation: 4096 heads in progress at once are ~70 MB at worst, and each lasts at most the
	 * header timeout.
	 */
	info.max_http_header_data2 = (unsigned)carillon_cfg.max_header_bytes; /* the unsigned short one stays 0 */
	info.max_http_header_pool2 = (unsigned)carillon_cfg.header_pool;
	info.timeout_secs_ah_idle = (unsigned)carillon_cfg.header_timeout_seconds;
	info.keepalive_timeout = (int)carillon_cfg.http_keepalive_seconds;
	info.timeout_secs = (unsigned)carillon_cfg.io_timeout_seconds;
	/* No fd_limit_per_thread: with it, lws 4.1 looks connections up by a linear scan of its fd table
	 * on every socket event (wsi_from_fd); sized from RLIMIT_NOFILE it indexes directly. */
	srv.ctx = lws_create_context(&info);
	if (!srv.ctx) {
		log_err("cannot create the libwebsockets context (is libwebsockets-evlib-uv installed?)");
		return -1;
	}
	srv.vh = lws_get_vhost_by_name(srv.ctx, "carillon");
	if (!srv.vh) {
		log_err("no vhost");
		return -1;
	}
	return 0;
}

int carillon_server_run(const char *conninfo)
{
	signal(SIGPIPE, SIG_IGN);
	raise_fd_limit();
	/* lws's own notices only at debug level: they are chatty. */
	lws_set_log_level(LLL_ERR | LLL_WARN | (!strcmp(carillon_cfg.log_level, "debug") ? LLL_NOTICE | LLL_INFO : 0),
			  lws_log_emit);
	uv_loop_init(&srv.loop);
	srv.listen_fd = srv.given_fd >= 0 ? srv.given_fd : open_listener(carillon_cfg.listen);
	if (srv.listen_fd < 0 || create_lws_context())
		return 1;
	carillon_metrics_init(CARILLON_VERSION);
	if (carillon_metrics_server_start(&srv.loop, carillon_cfg.metrics_listen, srv.worker_index))
		return 1;
	pid_t supervisor = getppid(); /* for a worker: alive now (spawn checked it after fork) */
	/* Root was needed for the port and the TLS key files, both in hand now. */
	if (carillon_privdrop_now())
		return 1;
	/* A worker of --workers N: changing credentials cleared the parent-death signal the supervisor
	 * set after fork, so set it again (and leave if the supervisor is already gone). */
	if (srv.given_fd >= 0 && (prctl(PR_SET_PDEATHSIG, SIGTERM) || getppid() != supervisor))
		return 1;
	carillon_db_init(&srv.loop, conninfo, (int)carillon_cfg.db_pool_size);
	/* Outbound HTTP (push, flow processors, streaming) shares the loop; its consumers start after. */
	struct carillon_outbound_opts oopts;
	carillon_outbound_opts_from_config(&oopts);
	if (carillon_outbound_init(&srv.loop, &oopts))
		return 1;
	if (carillon_flows_init())
		return 1;
	if (carillon_push_start())
		return 1;
	carillon_outbox_start(&srv.loop);
	carillon_pinpoint_send_start(&srv.loop);
	carillon_listener_start(&srv.loop);
	carillon_api_on_batch_events(carillon_listener_batch_events);
	carillon_streaming_start(&srv.loop);
	carillon_sessions_start(&srv.loop);
	carillon_http_writes_start(&srv.loop);
	carillon_janitor_start(&srv.loop, (unsigned)carillon_cfg.janitor_interval_ms);
	carillon_keys_start(&srv.loop, 5 * 1000);
	uv_poll_init(&srv.loop, &srv.listen_poll, srv.listen_fd);
	uv_poll_start(&srv.listen_poll, UV_READABLE, on_accept);
	uv_signal_init(&srv.loop, &srv.sig_term);
	uv_signal_start(&srv.sig_term, on_signal, SIGTERM);
	uv_signal_init(&srv.loop, &srv.sig_int);
	uv_signal_start(&srv.sig_int, on_signal, SIGINT);
	uv_signal_init(&srv.loop, &srv.sig_hup);
	uv_signal_start(&srv.sig_hup, on_hup, SIGHUP);
	/* A worker starts with these blocked (src/supervisor.c): one that came meanwhile is handled now. */
	sigset_t handled;
	carillon_worker_signals(&handled);
	sigprocmask(SIG_UNBLOCK, &handled, NULL);
	uv_timer_init(&srv.loop, &srv.drain);
	uv_timer_init(&srv.loop, &srv.lag);
	uv_timer_start(&srv.lag, lag_tick, LAG_EVERY_MS, LAG_EVERY_MS);
	uv_unref((uv_handle_t *)&srv.lag);
	log_notice("serving on %s://%s", *carillon_cfg.tls_cert ? "https" : "http", carillon_cfg.listen);
	if (!*carillon_cfg.public_endpoint &&
	    (!strncmp(carillon_cfg.listen, "0.0.0.0:", 8) || !strncmp(carillon_cfg.listen, "[::]:", 5)))
		log_warn("CARILLON_PUBLIC_ENDPOINT is unset: GetMessagingSessionEndpoint will return %s, which clients "
			 "cannot connect to; set it to the host[:port] of the TLS endpoint clients reach",
			 carillon_cfg.listen);
	uv_run(&srv.loop, UV_RUN_DEFAULT);
	/* lws closes its handles asynchronously on a foreign loop: let them finish. */
	while (uv_run(&srv.loop, UV_RUN_NOWAIT))
		;
	if (uv_loop_close(&srv.loop))
		log_warn("event loop closed with handles still open");
	carillon_db_free();
	carillon_hub_free();
	carillon_metrics_free();
	log_notice("stopped");
	return srv.exit_status;
}
