/*
 * One-dimensional arrays in PostgreSQL's binary format (what array_recv reads), for binary query
 * parameters (carillon_db_query_lane_binary): the gateway hands the server a batch as typed columns
 * it reads without parsing text. The format: the number of dimensions (1), a has-nulls flag, the
 * element type's OID, then the dimension's length and lower bound (1); then each element as its
 * length in bytes (-1: NULL) and its bytes. Every integer is in network byte order.
 */
#include <arpa/inet.h>
#include <string.h>

#include "carillon/db.h"
#include "carillon/util.h"

/* Offset of the has-nulls flag in the header. */
#define ARRAY_NULLS_AT 4

static void put_u32(struct carillon_buf *b, uint32_t v)
{
	uint32_t n = htonl(v);
	carillon_buf_append(b, &n, sizeof(n));
}

void carillon_db_array_begin(struct carillon_db_array *a, uint32_t elem_oid, int n)
{
	memset(a, 0, sizeof(*a));
	put_u32(&a->buf, 1);
	put_u32(&a->buf, 0);
	put_u32(&a->buf, elem_oid);
	put_u32(&a->buf, (uint32_t)n);
	put_u32(&a->buf, 1);
}

void carillon_db_array_null(struct carillon_db_array *a)
{
	put_u32(&a->buf, UINT32_MAX); /* -1 */
	a->nulls = true;
}

void carillon_db_array_text(struct carillon_db_array *a, const char *s, size_t len)
{
	if (!s) {
		carillon_db_array_null(a);
		return;
	}
	put_u32(&a->buf, (uint32_t)len);
	carillon_buf_append(&a->buf, s, len);
}

void carillon_db_array_int8(struct carillon_db_array *a, int64_t v)
{
	put_u32(&a->buf, 8);
	put_u32(&a->buf, (uint32_t)((uint64_t)v >> 32));
	put_u32(&a->buf, (uint32_t)v);
}

void carillon_db_array_jsonb(struct carillon_db_array *a, const char *json, size_t len)
{
	if (!json) {
		carillon_db_array_null(a);
		return;
	}
	put_u32(&a->buf, (uint32_t)len + 1);
	carillon_buf_append(&a->buf, "\1", 1); /* jsonb's binary format version */
	carillon_buf_append(&a->buf, json, len);
}

const char *carillon_db_array_finish(struct carillon_db_array *a, int *len)
{
	if (a->nulls) {
		uint32_t one = htonl(1);
		memcpy(a->buf.data + ARRAY_NULLS_AT, &one, sizeof(one));
	}
	*len = (int)a->buf.len;
	return a->buf.data;
}

void carillon_db_array_free(struct carillon_db_array *a) { carillon_buf_free(&a->buf); }
