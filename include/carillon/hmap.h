/* A string-keyed hash map (open addressing, linear probing, tombstones, a keyed hash) for the
 * realtime indexes and the rate limiters. */
#ifndef CARILLON_HMAP_H
#define CARILLON_HMAP_H

#include <stddef.h>

struct carillon_hmap_slot;

struct carillon_hmap {
	struct carillon_hmap_slot *slots;
	size_t cap, len, used; /* used counts tombstones too */
};

/* The value for `key`, or NULL. */
void *carillon_hmap_get(const struct carillon_hmap *m, const char *key);
/* Insert or replace; the map keeps its own copy of the key. */
void carillon_hmap_put(struct carillon_hmap *m, const char *key, void *value);
/* Remove; returns the value that was there, or NULL. */
void *carillon_hmap_del(struct carillon_hmap *m, const char *key);
/* Visit every entry (the callback must not modify the map). */
void carillon_hmap_each(const struct carillon_hmap *m, void (*fn)(const char *key, void *value, void *arg), void *arg);
void carillon_hmap_free(struct carillon_hmap *m);
/* The longest distance of an entry from its home slot (for tests: the cost of the worst lookup). */
size_t carillon_hmap_max_probe(const struct carillon_hmap *m);

#endif
