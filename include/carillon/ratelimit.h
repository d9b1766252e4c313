/*
 * Token buckets keyed by a string (an access key id, a user ARN), per process: `rate` tokens a
 * second up to `burst`. Memory is bounded: a bucket that has refilled completely holds no
 * information and is dropped by the periodic sweep; past `max_keys` live buckets, new keys are
 * refused (fail closed) until the sweep frees room.
 */
#ifndef CARILLON_RATELIMIT_H
#define CARILLON_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>

#include "carillon/hmap.h"

struct carillon_ratelimit {
	struct carillon_hmap buckets;
	double rate, burst;   /* rate <= 0: unlimited */
	size_t max_keys;
	int64_t last_sweep_ms;
};

void carillon_ratelimit_init(struct carillon_ratelimit *rl, long rate, long burst, size_t max_keys);
/* Take one token for `key` at `now_ms`; false when the bucket is empty (the caller refuses). */
bool carillon_ratelimit_take(struct carillon_ratelimit *rl, const char *key, int64_t now_ms);
void carillon_ratelimit_free(struct carillon_ratelimit *rl);

#endif
