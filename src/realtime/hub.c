/*
 * The hub: which local sessions hear which event.
 *
 * Indexes: channel ARN -> sessions of members (kept by the events' routing facts, in log order),
 * user ARN -> sessions. Every event carries its facts (struct carillon_event, decoded from its row:
 * the hub never reads an event type or a payload). Routing per event, for each candidate session
 * (the channel's sessions, plus the sessions of the users the event names in `joins` or `arns`),
 * in this order:
 *   1. joins: the session's user is in `joins` -> it joins the channel;
 *   2. deliver: audience 'only' -> the session's user is in `arns`; otherwise it is in the channel
 *      or its user is in `arns` (e.g. the member a DELETE_CHANNEL_MEMBERSHIP removes);
 *   3. leaves: the session's user is in `leaves`, or the event `closes` the channel -> it leaves.
 * Sessions still waiting for their membership snapshot get every event buffered and apply the same
 * rules once they know their channels (session.c).
 *
 * Fan-out in slices: an event reaching 10,000 sessions must not hold the loop for the whole
 * delivery (REST requests, pings and other events would wait behind it). Once the hub is started on
 * a loop (carillon_hub_start), events wait in a FIFO; the event at its head takes its candidates
 * when it starts (after every earlier event's joins and leaves, exactly as synchronous routing
 * would) and considers CARILLON_FANOUT_SLICE of them per loop turn. Events start one after the
 * other, so a later event never overtakes an earlier one for any session. Candidates are the
 * hub's own per-session records, which a closing session leaves behind (h->s = NULL) and which are
 * freed only once no fan-out is in progress, so a close in the middle of a fan-out is safe.
 * Sessions still pending when an event starts get it buffered then (and are marked as done for
 * it); sessions that connect later take a snapshot that already includes it.
 *
 * Costs: joining, leaving and "is session s in channel c" are O(1) whatever the number of channels
 * a session is in or of sessions a channel has (the pair index below), so a connect with N
 * channels costs O(N) and a user with tens of thousands of channels cannot stall the loop.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "carillon/hmap.h"
#include "carillon/log.h"
#include "carillon/realtime.h"
#include "carillon/util.h"

struct session_set {
	struct carillon_session **s;
	int n, cap;
};

/* A channel's members: each entry knows where the session keeps its ref to this channel, so that
 * adding and removing a session are O(1) whatever the channel's size. */
struct member_slot {
	struct hub_session *h;
	int ref;                 /* index in the session's refs */
};

struct hub_channel {
	char *arn;
	struct member_slot *m;
	int n, cap;
};

/* What the hub keeps per session (behind carillon_session_hub()): the channels it is in. */
struct channel_ref {
	struct hub_channel *c;
	int slot;                /* index in c->m */
};

struct hub_session {
	struct carillon_session *s; /* NULL once the session closed: its refs are being reaped */
	struct channel_ref *refs;
	int n, cap;
	struct hub_session *reap_next; /* the reap list, then the graveyard */
};

/* The pair index: (session, channel) -> the index of that channel's ref in the session's refs.
 * Open addressing with linear probing and backward-shift deletion (no tombstones). Keys are our
 * own pointers, not client input, so an unkeyed mixer is enough. */
struct pair_slot {
	struct hub_session *h;   /* NULL: empty */
	struct hub_channel *c;
	int ref;
};

static struct {
	struct pair_slot *slots;
	size_t cap, len;
} pairs;

static size_t pair_home(const struct hub_session *h, const struct hub_channel *c)
{
	uint64_t x = (uint64_t)(uintptr_t)h * 0x9E3779B97F4A7C15ULL ^ (uint64_t)(uintptr_t)c;
	x ^= x >> 31;
	x *= 0xBF58476D1CE4E5B9ULL;
	x ^= x >> 29;
	return (size_t)x & (pairs.cap - 1);
}

static struct pair_slot *pair_find(const struct hub_session *h, const struct hub_channel *c)
{
	if (!pairs.cap)
		return NULL;
	for (size_t i = pair_home(h, c);; i = (i + 1) & (pairs.cap - 1)) {
		struct pair_slot *p = &pairs.slots[i];
		if (!p->h)
			return NULL;
		if (p->h == h && p->c == c)
			return p;
	}
}

static void pair_insert(struct hub_session *h, struct hub_channel *c, int ref);

static void pairs_grow(void)
{
	struct pair_slot *old = pairs.slots;
	size_t old_cap = pairs.cap;
	pairs.cap = old_cap ? old_cap * 2 : 64;
	pairs.slots = carillon_xcalloc(pairs.cap, sizeof(*pairs.slots));
	pairs.len = 0;
	for (size_t i = 0; i < old_cap; i++)
		if (old[i].h)
			pair_insert(old[i].h, old[i].c, old[i].ref);
	free(old);
}

static void pair_insert(struct hub_session *h, struct hub_channel *c, int ref)
{
	if ((pairs.len + 1) * 2 > pairs.cap)
		pairs_grow();
	size_t i = pair_home(h, c);
	while (pairs.slots[i].h)
		i = (i + 1) & (pairs.cap - 1);
	pairs.slots[i] = (struct pair_slot){h, c, ref};
	pairs.len++;
}

/* Remove a slot and shift back the entries of its probe run that may now sit closer to home. */
static void pair_remove(struct pair_slot *p)
{
	size_t hole = (size_t)(p - pairs.slots);
	pairs.slots[hole].h = NULL;
	pairs.len--;
	for (size_t i = (hole + 1) & (pairs.cap - 1); pairs.slots[i].h; i = (i + 1) & (pairs.cap - 1)) {
		size_t home = pair_home(pairs.slots[i].h, pairs.slots[i].c);
		/* the entry at i may move to the hole if its home is not cyclically in (hole, i] */
		if (((i - home) & (pairs.cap - 1)) >= ((i - hole) & (pairs.cap - 1))) {
			pairs.slots[hole] = pairs.slots[i];
			pairs.slots[i].h = NULL;
			hole = i;
		}
	}
}

static struct carillon_hmap channels;    /* arn -> struct hub_channel */
static struct carillon_hmap users;       /* arn -> struct session_set */
static struct session_set pending;
static uint64_t dispatch_stamp;

/* Events waiting to be fanned out, in log order; the head one is in progress once `started`. */
struct fanout {
	struct carillon_event *e;
	struct fanout *next;
};

static struct {
	struct fanout *head, *tail;
	unsigned queued;
	bool started;                /* the head's candidates are taken */
	struct hub_session **cand;   /* the head's candidates (may repeat: the stamp dedupes) */
	size_t n, next, cap;
	unsigned turns;              /* loop turns the head has taken so far */
	unsigned slice;              /* 0: not started on a loop, every event is delivered at once */
	uv_loop_t *loop;
	uv_idle_t idle;
	bool idle_on;
	void (*drained)(void);
	struct hub_session *graveyard; /* closed sessions' records, freed once no fan-out runs */
} fan;

/* Each session is added once to its user's set and to the pending set. */
static void set_add(struct session_set *set, struct carillon_session *s)
{
	if (set->n == set->cap) {
		set->cap = set->cap ? set->cap * 2 : 4;
		set->s = carillon_xrealloc(set->s, sizeof(*set->s) * (size_t)set->cap);
	}
	set->s[set->n++] = s;
}

static void set_remove(struct session_set *set, struct carillon_session *s)
{
	for (int i = 0; i < set->n; i++)
		if (set->s[i] == s) {
			set->s[i] = set->s[--set->n];
			return;
		}
}

static bool named(char *const *arns, int n, const char *arn)
{
	for (int i = 0; i < n; i++)
		if (!strcmp(arns[i], arn))
			return true;
	return false;
}

void carillon_hub_add_user(struct carillon_session *s, const char *user_arn)
{
	struct session_set *set = carillon_hmap_get(&users, user_arn);
	if (!set) {
		set = carillon_xcalloc(1, sizeof(*set));
		carillon_hmap_put(&users, user_arn, set);
	}
	set_add(set, s);
	set_add(&pending, s);
}

static struct hub_session *hub_of(struct carillon_session *s)
{
	void **slot = carillon_session_hub(s);
	if (!*slot) {
		struct hub_session *h = carillon_xcalloc(1, sizeof(*h));
		h->s = s;
		*slot = h;
	}
	return *slot;
}

static int ref_index(struct hub_session *h, struct hub_channel *c)
{
	struct pair_slot *p = c ? pair_find(h, c) : NULL;
	return p ? p->ref : -1;
}

void carillon_hub_join(struct carillon_session *s, const char *channel_arn)
{
	struct hub_channel *c = carillon_hmap_get(&channels, channel_arn);
	if (!c) {
		c = carillon_xcalloc(1, sizeof(*c));
		c->arn = carillon_xstrdup(channel_arn);
		carillon_hmap_put(&channels, channel_arn, c);
	}
	struct hub_session *h = hub_of(s);
	if (ref_index(h, c) >= 0)
		return;
	if (h->n == h->cap) {
		h->cap = h->cap ? h->cap * 2 : 4;
		h->refs = carillon_xrealloc(h->refs, sizeof(*h->refs) * (size_t)h->cap);
	}
	if (c->n == c->cap) {
		c->cap = c->cap ? c->cap * 2 : 4;
		c->m = carillon_xrealloc(c->m, sizeof(*c->m) * (size_t)c->cap);
	}
	pair_insert(h, c, h->n);
	h->refs[h->n] = (struct channel_ref){c, c->n};
	c->m[c->n++] = (struct member_slot){h, h->n++};
}

static void channel_free(struct hub_channel *c)
{
	free(c->m);
	free(c->arn);
	free(c);
}

static void channel_drop_if_empty(struct hub_channel *c)
{
	if (c->n)
		return;
	carillon_hmap_del(&channels, c->arn);
	channel_free(c);
}

/* Remove ref i of a session (and its slot in the channel), by swapping with the last ones. */
static void hub_leave_ref(struct hub_session *h, int i)
{
	struct hub_channel *c = h->refs[i].c;
	int slot = h->refs[i].slot;
	/* channel side: move the last member into the freed slot and fix its session's ref */
	struct member_slot last = c->m[--c->n];
	if (slot != c->n) {
		c->m[slot] = last;
		last.h->refs[last.ref].slot = slot;
	}
	/* session side: move the last ref into the freed index and fix its channel's slot */
	pair_remove(pair_find(h, c));
	struct channel_ref moved = h->refs[--h->n];
	if (i != h->n) {
		h->refs[i] = moved;
		moved.c->m[moved.slot].ref = i;
		pair_find(h, moved.c)->ref = i;
	}
	channel_drop_if_empty(c);
}

static bool in_channel(struct carillon_session *s, struct hub_channel *c)
{
	return ref_index(hub_of(s), c) >= 0;
}

/* Closed sessions whose channels are left REAP_SLICE at a time (carillon_hub_reap): a session in
 * 60,000 channels must not hold the loop while it leaves them all. Until then its slots stay in
 * their channels, marked closed (h->s == NULL), and dispatch skips them. */
#define REAP_NOW 256
static struct hub_session *reap_head;

/* A closed session's record, once it is in no channel: a fan-out in progress may still hold it
 * among its candidates, so it waits in the graveyard until that fan-out ends. */
static void hub_session_release(struct hub_session *h)
{
	if (fan.started) {
		h->reap_next = fan.graveyard;
		fan.graveyard = h;
		return;
	}
	free(h->refs);
	free(h);
}

static void graveyard_free(void)
{
	while (fan.graveyard) {
		struct hub_session *h = fan.graveyard;
		fan.graveyard = h->reap_next;
		free(h->refs);
		free(h);
	}
}

void carillon_hub_detach(struct carillon_session *s)
{
	void **slot = carillon_session_hub(s);
	struct hub_session *h = *slot;
	*slot = NULL;
	if (h) {
		h->s = NULL;
		if (h->n <= REAP_NOW) {
			while (h->n)
				hub_leave_ref(h, h->n - 1);
			hub_session_release(h);
		} else {
			h->reap_next = reap_head;
			reap_head = h;
		}
	}
	set_remove(&pending, s);
	const char *user = carillon_session_user(s);
	struct session_set *set = user ? carillon_hmap_get(&users, user) : NULL;
	if (set) {
		set_remove(set, s);
		if (!set->n) {
			carillon_hmap_del(&users, user);
			free(set->s);
			free(set);
		}
	}
}

bool carillon_hub_reap(unsigned budget)
{
	while (reap_head && budget) {
		struct hub_session *h = reap_head;
		while (h->n && budget) {
			hub_leave_ref(h, h->n - 1);
			budget--;
		}
		if (!h->n) {
			reap_head = h->reap_next;
			hub_session_release(h);
		}
	}
	return reap_head != NULL;
}

/* The three routing steps for one session (see the header comment). */
static void route(struct carillon_session *s, struct carillon_event *e)
{
	if (e->position <= carillon_session_start(s))
		return;
	const char *user = carillon_session_user(s);
	if (named(e->joins.v, e->joins.n, user))
		carillon_hub_join(s, e->channel_arn);
	struct hub_channel *c = carillon_hmap_get(&channels, e->channel_arn);
	bool deliver = e->only ? named(e->arns.v, e->arns.n, user)
			       : in_channel(s, c) || named(e->arns.v, e->arns.n, user);
	if (deliver)
		carillon_session_deliver(s, e);
	bool leaves = e->closes || named(e->leaves.v, e->leaves.n, user);
	int ref = leaves && c ? ref_index(hub_of(s), c) : -1;
	if (ref >= 0)
		hub_leave_ref(hub_of(s), ref);
}

/* Route to one candidate once per event (a session may be a candidate twice: joined and named). */
static void consider(struct hub_session *h, struct carillon_event *e)
{
	struct carillon_session *s = h->s;
	if (!s)
		return; /* closed since the fan-out started */
	uint64_t *stamp = carillon_session_stamp(s);
	if (*stamp == dispatch_stamp || !carillon_session_active(s))
		return;
	*stamp = dispatch_stamp;
	route(s, e);
}

static void cand_push(struct hub_session *h)
{
	if (fan.n == fan.cap) {
		fan.cap = fan.cap ? fan.cap * 2 : 256;
		fan.cand = carillon_xrealloc(fan.cand, sizeof(*fan.cand) * fan.cap);
	}
	fan.cand[fan.n++] = h;
}

static void cand_users(char *const *arns, int n)
{
	for (int i = 0; i < n; i++) {
		struct session_set *set = carillon_hmap_get(&users, arns[i]);
		for (int j = 0; set && j < set->n; j++)
			cand_push(hub_of(set->s[j]));
	}
}

/* The head event starts: sessions still pending get it buffered (they route it themselves once
 * they know their channels) and are marked done for it; the candidates are taken as the indexes
 * stand now, after every earlier event: users the event names first (a join must happen before
 * delivery), then the channel's sessions. */
static void fan_begin(struct carillon_event *e)
{
	dispatch_stamp++;
	fan.started = true;
	fan.n = fan.next = 0;
	for (int i = 0; i < pending.n;) {
		struct carillon_session *s = pending.s[i];
		if (carillon_session_active(s)) {
			pending.s[i] = pending.s[--pending.n];
			continue;
		}
		*carillon_session_stamp(s) = dispatch_stamp;
		carillon_session_buffer(s, e);
		i++;
	}
	cand_users(e->joins.v, e->joins.n);
	cand_users(e->arns.v, e->arns.n);
	struct hub_channel *c = carillon_hmap_get(&channels, e->channel_arn);
	for (int i = 0; c && i < c->n; i++)
		if (c->m[i].h->s) /* not a closed session whose refs wait to be reaped */
			cand_push(c->m[i].h);
	fan.turns = 0;
	if (fan.slice && fan.n > fan.slice)
		log_debug("fan-out of event %lld to %zu sessions: started", (long long)e->position, fan.n);
}

static void fan_end(void)
{
	struct fanout *f = fan.head;
	if (fan.slice && fan.n > fan.slice)
		log_debug("fan-out of event %lld to %zu sessions: done in %u loop turns", (long long)f->e->position, fan.n,
			  fan.turns + 1);
	fan.head = f->next;
	if (!fan.head)
		fan.tail = NULL;
	fan.queued--;
	fan.started = false;
	fan.n = fan.next = 0;
	carillon_event_unref(f->e);
	free(f);
	graveyard_free();
}

bool carillon_hub_step(unsigned budget)
{
	while (fan.head && budget) {
		if (!fan.started)
			fan_begin(fan.head->e);
		while (fan.next < fan.n && budget) {
			consider(fan.cand[fan.next++], fan.head->e);
			budget--;
		}
		if (fan.next == fan.n)
			fan_end();
	}
	return fan.head != NULL;
}

unsigned carillon_hub_backlog(void) { return fan.queued; }

bool carillon_hub_unheard(const char *channel_arn)
{
	return !fan.head && !pending.n && !carillon_hmap_get(&channels, channel_arn ? channel_arn : "");
}

bool carillon_hub_silent(void) { return !fan.head && !pending.n && !users.len; }

void carillon_hub_on_drained(void (*fn)(void)) { fan.drained = fn; }

static void fan_tick(uv_idle_t *h)
{
	fan.turns++;
	if (carillon_hub_step(fan.slice))
		return;
	uv_idle_stop(h);
	fan.idle_on = false;
	if (fan.drained)
		fan.drained();
}

void carillon_hub_dispatch(struct carillon_event *e)
{
	struct fanout *f = carillon_xmalloc(sizeof(*f));
	f->e = carillon_event_ref(e);
	f->next = NULL;
	if (fan.tail)
		fan.tail->next = f;
	else
		fan.head = f;
	fan.tail = f;
	fan.queued++;
	if (!fan.slice) { /* no loop: at once, as before */
		while (carillon_hub_step(~0u))
			;
		return;
	}
	/* Nothing ahead of it: the first slice goes now (the common small fan-out is done in one). */
	if (fan.queued == 1 && !carillon_hub_step(fan.slice))
		return;
	if (fan.loop && !fan.idle_on) {
		uv_idle_start(&fan.idle, fan_tick);
		fan.idle_on = true;
	}
}

void carillon_hub_start(uv_loop_t *loop, unsigned slice)
{
	fan.slice = slice ? slice : 1;
	fan.loop = loop;
	if (loop)
		uv_idle_init(loop, &fan.idle);
}

static void idle_closed(uv_handle_t *h) { (void)h; }

/* Shutdown: the sessions are closing; events not yet delivered are dropped. */
void carillon_hub_stop(void)
{
	while (fan.head) {
		fan.started = true;
		fan_end();
	}
	if (fan.loop) {
		uv_idle_stop(&fan.idle);
		uv_close((uv_handle_t *)&fan.idle, idle_closed);
	}
	fan.loop = NULL;
	fan.idle_on = false;
	fan.slice = 0;
}

void carillon_hub_replay(struct carillon_session *s, struct carillon_event *e) { route(s, e); }

static void free_channel(const char *key, void *value, void *arg)
{
	channel_free(value);
}

static void free_set(const char *key, void *value, void *arg)
{
	struct session_set *set = value;
	free(set->s);
	free(set);
}

void carillon_hub_free(void)
{
	while (fan.head) {
		fan.started = true;
		fan_end();
	}
	free(fan.cand);
	fan.cand = NULL;
	fan.cap = 0;
	while (carillon_hub_reap(~0u))
		;
	carillon_hmap_each(&channels, free_channel, NULL);
	carillon_hmap_each(&users, free_set, NULL);
	carillon_hmap_free(&channels);
	carillon_hmap_free(&users);
	free(pending.s);
	memset(&pending, 0, sizeof(pending));
	free(pairs.slots);
	memset(&pairs, 0, sizeof(pairs));
}

int carillon_hub_channel_sessions(const char *channel_arn)
{
	struct hub_channel *c = carillon_hmap_get(&channels, channel_arn);
	int n = 0;
	for (int i = 0; c && i < c->n; i++)
		n += c->m[i].h->s != NULL;
	return n;
}

int carillon_hub_user_sessions(const char *user_arn)
{
	struct session_set *set = carillon_hmap_get(&users, user_arn);
	return set ? set->n : 0;
}
