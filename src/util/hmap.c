/*
 * String-keyed hash map: open addressing with linear probing, power-of-two capacity.
 *
 * Keys are often client-chosen (channel ARNs end in ids a client picks), so the hash is keyed:
 * SipHash (libsodium's crypto_shorthash) under a random key drawn once per process. An unkeyed
 * hash (FNV-1a before) lets anyone craft keys that share one probe run and turn every lookup into
 * a scan of the whole map.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "carillon/hmap.h"
#include "carillon/util.h"

struct carillon_hmap_slot {
	char *key;            /* NULL: empty; TOMBSTONE: deleted */
	void *value;
	uint64_t hash;
};

static char tombstone_mark;
#define TOMBSTONE (&tombstone_mark)

static unsigned char hash_key[crypto_shorthash_KEYBYTES];
static pthread_once_t hash_key_once = PTHREAD_ONCE_INIT;

/* The process's key, drawn once, on first use (whatever thread gets there first). */
static void hash_key_draw(void)
{
	if (sodium_init() < 0)
		abort();
	randombytes_buf(hash_key, sizeof(hash_key));
}

static uint64_t hash_of(const char *s)
{
	unsigned char out[crypto_shorthash_BYTES];
	pthread_once(&hash_key_once, hash_key_draw);
	crypto_shorthash(out, (const unsigned char *)s, strlen(s), hash_key);
	uint64_t h;
	memcpy(&h, out, sizeof(h));
	return h;
}

static struct carillon_hmap_slot *find(const struct carillon_hmap *m, const char *key, uint64_t h)
{
	if (!m->cap)
		return NULL;
	for (size_t i = h & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
		struct carillon_hmap_slot *s = &m->slots[i];
		if (!s->key)
			return NULL;
		if (s->key != TOMBSTONE && s->hash == h && !strcmp(s->key, key))
			return s;
	}
}

static void grow(struct carillon_hmap *m)
{
	size_t cap = m->cap ? m->cap * 2 : 16;
	if (m->len * 2 < m->cap)
		cap = m->cap; /* mostly tombstones: rehash in place */
	struct carillon_hmap_slot *old = m->slots;
	size_t old_cap = m->cap;
	m->slots = carillon_xcalloc(cap, sizeof(*m->slots));
	m->cap = cap;
	m->used = m->len;
	for (size_t i = 0; i < old_cap; i++) {
		if (!old[i].key || old[i].key == TOMBSTONE)
			continue;
		size_t j = old[i].hash & (cap - 1);
		while (m->slots[j].key)
			j = (j + 1) & (cap - 1);
		m->slots[j] = old[i];
	}
	free(old);
}

void *carillon_hmap_get(const struct carillon_hmap *m, const char *key)
{
	struct carillon_hmap_slot *s = find(m, key, hash_of(key));
	return s ? s->value : NULL;
}

void carillon_hmap_put(struct carillon_hmap *m, const char *key, void *value)
{
	uint64_t h = hash_of(key);
	struct carillon_hmap_slot *s = find(m, key, h);
	if (s) {
		s->value = value;
		return;
	}
	if ((m->used + 1) * 4 >= m->cap * 3)
		grow(m);
	size_t i = h & (m->cap - 1);
	while (m->slots[i].key && m->slots[i].key != TOMBSTONE)
		i = (i + 1) & (m->cap - 1);
	if (!m->slots[i].key)
		m->used++;
	m->slots[i] = (struct carillon_hmap_slot){carillon_xstrdup(key), value, h};
	m->len++;
}

void *carillon_hmap_del(struct carillon_hmap *m, const char *key)
{
	struct carillon_hmap_slot *s = find(m, key, hash_of(key));
	if (!s)
		return NULL;
	void *v = s->value;
	free(s->key);
	s->key = TOMBSTONE;
	s->value = NULL;
	m->len--;
	return v;
}

void carillon_hmap_each(const struct carillon_hmap *m, void (*fn)(const char *key, void *value, void *arg), void *arg)
{
	for (size_t i = 0; i < m->cap; i++)
		if (m->slots[i].key && m->slots[i].key != TOMBSTONE)
			fn(m->slots[i].key, m->slots[i].value, arg);
}

void carillon_hmap_free(struct carillon_hmap *m)
{
	for (size_t i = 0; i < m->cap; i++)
		if (m->slots[i].key && m->slots[i].key != TOMBSTONE)
			free(m->slots[i].key);
	free(m->slots);
	memset(m, 0, sizeof(*m));
}

size_t carillon_hmap_max_probe(const struct carillon_hmap *m)
{
	size_t worst = 0;
	for (size_t i = 0; i < m->cap; i++) {
		if (!m->slots[i].key || m->slots[i].key == TOMBSTONE)
			continue;
		size_t d = (i - (m->slots[i].hash & (m->cap - 1))) & (m->cap - 1);
		if (d > worst)
			worst = d;
	}
	return worst;
}
