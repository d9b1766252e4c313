/*
 * The metric registry and the Prometheus text exposition format (see include/carillon/metrics.h).
 *
 * A family keeps its series in creation order (the exposition's order) and in a chained hash
 * table keyed by the label values, so recording into an existing series allocates nothing.
 * Histogram buckets are counted per bucket and made cumulative when rendered.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "carillon/metrics.h"
#include "carillon/util.h"

struct carillon_metric {
	struct carillon_metric_family *f;
	struct carillon_metric *chain;   /* next in the hash bucket */
	uint32_t hash;
	char **values;                   /* n_labels label values */
	double value;                    /* counter, gauge; histogram: the sum */
	uint64_t count;                  /* histogram */
	uint64_t *buckets;               /* histogram: n_buckets + 1 (+Inf) counts, not cumulative */
};

struct carillon_metric_family {
	char *name, *help;
	enum carillon_metric_kind kind;
	size_t n_labels;
	char *labels[CARILLON_METRIC_MAX_LABELS];
	double bounds[CARILLON_METRIC_MAX_BUCKETS];
	size_t n_bounds;
	size_t max_series;
	struct carillon_metric **series; /* creation order */
	size_t n_series;
	struct carillon_metric **table;  /* hash buckets */
	size_t table_size;
	struct carillon_metric *overflow;
};

static struct carillon_metric_family **families;
static size_t n_families;

double carillon_metrics_clock(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static bool valid_name(const char *s, bool label)
{
	if (!s || !*s || (*s >= '0' && *s <= '9'))
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '_' ||
		      (!label && *s == ':')))
			return false;
	return true;
}

static void family_free(struct carillon_metric_family *f);

/* Split "a,b,c" into the family's label names; false when one is invalid or there are too many. */
static bool parse_labels(struct carillon_metric_family *f, const char *labels)
{
	if (!labels || !*labels)
		return true;
	const char *p = labels;
	while (*p) {
		size_t n = strcspn(p, ",");
		if (f->n_labels == CARILLON_METRIC_MAX_LABELS)
			return false;
		char *name = carillon_xstrndup(p, n);
		f->labels[f->n_labels++] = name;
		if (!valid_name(name, true) || !strcmp(name, "le"))
			return false;
		p += n + (p[n] == ',');
	}
	return true;
}

struct carillon_metric_family *carillon_metrics_family(const char *name, const char *help,
						       enum carillon_metric_kind kind, const char *labels,
						       const double *buckets, size_t n_buckets, size_t max_series)
{
	if (!valid_name(name, false) || !max_series || n_buckets > CARILLON_METRIC_MAX_BUCKETS ||
	    (kind == CARILLON_METRIC_HISTOGRAM && (!buckets || !n_buckets)))
		return NULL;
	for (size_t i = 0; i < n_families; i++)
		if (!strcmp(families[i]->name, name))
			return NULL;
	for (size_t i = 1; kind == CARILLON_METRIC_HISTOGRAM && i < n_buckets; i++)
		if (!(buckets[i] > buckets[i - 1]))
			return NULL;
	struct carillon_metric_family *f = carillon_xcalloc(1, sizeof(*f));
	f->name = carillon_xstrdup(name);
	f->help = carillon_xstrdup(help ? help : "");
	f->kind = kind;
	f->max_series = max_series;
	if (!parse_labels(f, labels)) {
		family_free(f);
		return NULL;
	}
	if (kind == CARILLON_METRIC_HISTOGRAM) {
		memcpy(f->bounds, buckets, n_buckets * sizeof(double));
		f->n_bounds = n_buckets;
	}
	families = carillon_xrealloc(families, (n_families + 1) * sizeof(*families));
	families[n_families++] = f;
	return f;
}

static uint32_t values_hash(const struct carillon_metric_family *f, const char *const *values)
{
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < f->n_labels; i++) {
		for (const char *p = values[i]; *p; p++)
			h = (h ^ (unsigned char)*p) * 16777619u;
		h = (h ^ 0xff) * 16777619u; /* a separator no label value contains as a byte of UTF-8 */
	}
	return h;
}

static struct carillon_metric *series_new(struct carillon_metric_family *f, const char *const *values, uint32_t h)
{
	struct carillon_metric *m = carillon_xcalloc(1, sizeof(*m));
	m->f = f;
	m->hash = h;
	m->values = carillon_xcalloc(f->n_labels ? f->n_labels : 1, sizeof(char *));
	for (size_t i = 0; i < f->n_labels; i++)
		m->values[i] = carillon_xstrdup(values[i]);
	if (f->kind == CARILLON_METRIC_HISTOGRAM)
		m->buckets = carillon_xcalloc(f->n_bounds + 1, sizeof(uint64_t));
	return m;
}

static void table_grow(struct carillon_metric_family *f)
{
	size_t size = f->table_size ? f->table_size * 2 : 16;
	struct carillon_metric **t = carillon_xcalloc(size, sizeof(*t));
	for (size_t i = 0; i < f->n_series; i++) {
		struct carillon_metric *m = f->series[i];
		m->chain = t[m->hash & (size - 1)];
		t[m->hash & (size - 1)] = m;
	}
	free(f->table);
	f->table = t;
	f->table_size = size;
}

static bool same_values(const struct carillon_metric *m, const char *const *values)
{
	for (size_t i = 0; i < m->f->n_labels; i++)
		if (strcmp(m->values[i], values[i]))
			return false;
	return true;
}

struct carillon_metric *carillon_metrics_series(struct carillon_metric_family *f, const char *const *values)
{
	if (!f)
		return NULL;
	static const char *const none[CARILLON_METRIC_MAX_LABELS] = {"", "", "", ""};
	const char *fixed[CARILLON_METRIC_MAX_LABELS];
	for (size_t i = 0; i < f->n_labels; i++)
		fixed[i] = values && values[i] ? values[i] : none[i];
	uint32_t h = values_hash(f, fixed);
	if (f->table_size)
		for (struct carillon_metric *m = f->table[h & (f->table_size - 1)]; m; m = m->chain)
			if (m->hash == h && same_values(m, fixed))
				return m;
	if (f->n_series >= f->max_series) {
		if (!f->overflow) {
			const char *over[CARILLON_METRIC_MAX_LABELS] = {"_overflow", "_overflow", "_overflow", "_overflow"};
			f->overflow = series_new(f, over, 0);
		}
		return f->overflow;
	}
	if (f->n_series >= f->table_size)
		table_grow(f);
	struct carillon_metric *m = series_new(f, fixed, h);
	f->series = carillon_xrealloc(f->series, (f->n_series + 1) * sizeof(*f->series));
	f->series[f->n_series++] = m;
	m->chain = f->table[h & (f->table_size - 1)];
	f->table[h & (f->table_size - 1)] = m;
	return m;
}

void carillon_metric_add(struct carillon_metric *m, double v)
{
	if (m && m->f->kind != CARILLON_METRIC_HISTOGRAM && (m->f->kind == CARILLON_METRIC_GAUGE || v >= 0))
		m->value += v;
}

void carillon_metric_set(struct carillon_metric *m, double v)
{
	if (m && m->f->kind == CARILLON_METRIC_GAUGE)
		m->value = v;
}

void carillon_metric_observe(struct carillon_metric *m, double v)
{
	if (!m || m->f->kind != CARILLON_METRIC_HISTOGRAM || isnan(v))
		return;
	size_t i = 0;
	while (i < m->f->n_bounds && v > m->f->bounds[i])
		i++;
	m->buckets[i]++;
	m->count++;
	m->value += v;
}

double carillon_metric_value(const struct carillon_metric *m)
{
	if (!m)
		return 0;
	return m->f->kind == CARILLON_METRIC_HISTOGRAM ? (double)m->count : m->value;
}

/* ------------------------------------------------------------------------------ exposition */

/* A sample value as Prometheus parses it: integers without a fraction, other numbers in the
 * shortest form that reads back exactly, +Inf, -Inf, NaN. */
static void put_number(struct carillon_buf *out, double v)
{
	if (isnan(v)) {
		carillon_buf_append(out, "NaN", 3);
		return;
	}
	if (isinf(v)) {
		carillon_buf_appendf(out, "%s", v > 0 ? "+Inf" : "-Inf");
		return;
	}
	if (v == floor(v) && fabs(v) < 1e15) {
		carillon_buf_appendf(out, "%.0f", v);
		return;
	}
	char s[40];
	for (int prec = 6; prec <= 17; prec++) {
		snprintf(s, sizeof(s), "%.*g", prec, v);
		if (strtod(s, NULL) == v)
			break;
	}
	carillon_buf_appendf(out, "%s", s);
}

/* Label values escape \ " and newline; HELP text escapes \ and newline. */
static void put_escaped(struct carillon_buf *out, const char *s, bool quotes)
{
	for (; *s; s++) {
		if (*s == '\\')
			carillon_buf_append(out, "\\\\", 2);
		else if (*s == '\n')
			carillon_buf_append(out, "\\n", 2);
		else if (quotes && *s == '"')
			carillon_buf_append(out, "\\\"", 2);
		else
			carillon_buf_append(out, s, 1);
	}
}

/* name{a="x",b="y"[,le="..."]} value */
static void put_sample(struct carillon_buf *out, const struct carillon_metric *m, const char *suffix, const char *le,
		       double v)
{
	const struct carillon_metric_family *f = m->f;
	carillon_buf_appendf(out, "%s%s", f->name, suffix);
	if (f->n_labels || le) {
		carillon_buf_append(out, "{", 1);
		for (size_t i = 0; i < f->n_labels; i++) {
			carillon_buf_appendf(out, "%s%s=\"", i ? "," : "", f->labels[i]);
			put_escaped(out, m->values[i], true);
			carillon_buf_append(out, "\"", 1);
		}
		if (le)
			carillon_buf_appendf(out, "%sle=\"%s\"", f->n_labels ? "," : "", le);
		carillon_buf_append(out, "}", 1);
	}
	carillon_buf_append(out, " ", 1);
	put_number(out, v);
	carillon_buf_append(out, "\n", 1);
}

static void put_series(struct carillon_buf *out, const struct carillon_metric *m)
{
	const struct carillon_metric_family *f = m->f;
	if (f->kind != CARILLON_METRIC_HISTOGRAM) {
		put_sample(out, m, "", NULL, m->value);
		return;
	}
	uint64_t cumulative = 0;
	for (size_t i = 0; i <= f->n_bounds; i++) {
		cumulative += m->buckets[i];
		struct carillon_buf le = {0};
		if (i < f->n_bounds)
			put_number(&le, f->bounds[i]);
		else
			carillon_buf_append(&le, "+Inf", 4);
		carillon_buf_append(&le, "", 1);
		put_sample(out, m, "_bucket", le.data, (double)cumulative);
		carillon_buf_free(&le);
	}
	put_sample(out, m, "_sum", NULL, m->value);
	put_sample(out, m, "_count", NULL, (double)m->count);
}

void carillon_metrics_render(struct carillon_buf *out)
{
	static const char *const types[] = {"counter", "gauge", "histogram"};
	for (size_t i = 0; i < n_families; i++) {
		const struct carillon_metric_family *f = families[i];
		carillon_buf_appendf(out, "# HELP %s ", f->name);
		put_escaped(out, f->help, false);
		carillon_buf_appendf(out, "\n# TYPE %s %s\n", f->name, types[f->kind]);
		for (size_t k = 0; k < f->n_series; k++)
			put_series(out, f->series[k]);
		if (f->overflow)
			put_series(out, f->overflow);
	}
}

static void series_free(struct carillon_metric *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->f->n_labels; i++)
		free(m->values[i]);
	free(m->values);
	free(m->buckets);
	free(m);
}

static void family_free(struct carillon_metric_family *f)
{
	for (size_t i = 0; i < f->n_series; i++)
		series_free(f->series[i]);
	series_free(f->overflow);
	for (size_t i = 0; i < f->n_labels; i++)
		free(f->labels[i]);
	free(f->series);
	free(f->table);
	free(f->name);
	free(f->help);
	free(f);
}

void carillon_metrics_reset(void)
{
	for (size_t i = 0; i < n_families; i++)
		family_free(families[i]);
	free(families);
	families = NULL;
	n_families = 0;
}
