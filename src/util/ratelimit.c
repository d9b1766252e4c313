/* Token buckets keyed by string; see include/carillon/ratelimit.h. */
#include <stdlib.h>

#include "carillon/ratelimit.h"
#include "carillon/util.h"

#define SWEEP_EVERY_MS 10000

struct bucket {
	double tokens;
	int64_t last_ms;
};

struct sweep_ctx {
	struct carillon_ratelimit *rl;
	int64_t now_ms;
	const char **dead;
	size_t n_dead, cap_dead;
};

void carillon_ratelimit_init(struct carillon_ratelimit *rl, long rate, long burst, size_t max_keys)
{
	*rl = (struct carillon_ratelimit){.rate = (double)rate, .burst = burst > 0 ? (double)burst : 1.0,
					  .max_keys = max_keys};
}

static double refilled(const struct carillon_ratelimit *rl, const struct bucket *b, int64_t now_ms)
{
	double t = b->tokens + rl->rate * (double)(now_ms - b->last_ms) / 1000.0;
	return t > rl->burst ? rl->burst : t;
}

static void collect_full(const char *key, void *value, void *arg)
{
	struct sweep_ctx *c = arg;
	if (refilled(c->rl, value, c->now_ms) < c->rl->burst)
		return;
	if (c->n_dead == c->cap_dead) {
		c->cap_dead = c->cap_dead ? c->cap_dead * 2 : 64;
		c->dead = carillon_xrealloc(c->dead, c->cap_dead * sizeof(*c->dead));
	}
	c->dead[c->n_dead++] = key;
}

/* Drop every bucket that has refilled: forgetting it changes nothing. */
static void sweep(struct carillon_ratelimit *rl, int64_t now_ms)
{
	struct sweep_ctx c = {.rl = rl, .now_ms = now_ms};
	rl->last_sweep_ms = now_ms;
	carillon_hmap_each(&rl->buckets, collect_full, &c);
	for (size_t i = 0; i < c.n_dead; i++) {
		/* the key string belongs to the map: copy it before deleting */
		char *k = carillon_xstrdup(c.dead[i]);
		free(carillon_hmap_del(&rl->buckets, k));
		free(k);
	}
	free(c.dead);
}

bool carillon_ratelimit_take(struct carillon_ratelimit *rl, const char *key, int64_t now_ms)
{
	if (rl->rate <= 0)
		return true;
	if (now_ms - rl->last_sweep_ms >= SWEEP_EVERY_MS)
		sweep(rl, now_ms);
	struct bucket *b = carillon_hmap_get(&rl->buckets, key);
	if (!b) {
		if (rl->buckets.len >= rl->max_keys) {
			/* Full of live buckets: sweep at most once a millisecond, not once per new key. */
			if (now_ms != rl->last_sweep_ms)
				sweep(rl, now_ms);
			if (rl->buckets.len >= rl->max_keys)
				return false;
		}
		b = carillon_xmalloc(sizeof(*b));
		*b = (struct bucket){.tokens = rl->burst, .last_ms = now_ms};
		carillon_hmap_put(&rl->buckets, key, b);
	}
	b->tokens = refilled(rl, b, now_ms < b->last_ms ? b->last_ms : now_ms);
	if (now_ms > b->last_ms)
		b->last_ms = now_ms;
	if (b->tokens < 1.0)
		return false;
	b->tokens -= 1.0;
	return true;
}

static void free_value(const char *key, void *value, void *arg)
{
	(void)key;
	(void)arg;
	free(value);
}

void carillon_ratelimit_free(struct carillon_ratelimit *rl)
{
	carillon_hmap_each(&rl->buckets, free_value, NULL);
	carillon_hmap_free(&rl->buckets);
}
