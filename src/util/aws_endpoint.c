/* The URLs of the AWS APIs Carillon calls (include/carillon/aws_endpoint.h). */
#include <string.h>

#include "carillon/aws_endpoint.h"
#include "carillon/util.h"

/* The length of "scheme://", or 0 when `url` is not http(s). */
static size_t scheme_len(const char *url)
{
	if (!strncmp(url, "https://", 8))
		return 8;
	return !strncmp(url, "http://", 7) ? 7 : 0;
}

int carillon_aws_endpoint_valid(const char *base)
{
	size_t s = base ? scheme_len(base) : 0;
	return s && base[s] && base[s] != '/';
}

char *carillon_aws_endpoint_url(const char *base, const char *service, const char *region, const char *path)
{
	struct carillon_buf b = {0};
	size_t s;
	if (base && *base) {
		size_t n = strlen(base);
		s = scheme_len(base);
		while (n > s + 1 && base[n - 1] == '/')
			n--;
		carillon_buf_appendf(&b, "%.*s", (int)n, base);
	} else {
		carillon_buf_appendf(&b, "https://%s.%s.amazonaws.com", service, region);
		s = 8;
	}
	carillon_buf_appendf(&b, "%s", path);
	/* No path after the authority: the request goes to "/". */
	if (!strchr(b.data + s, '/'))
		carillon_buf_appendf(&b, "/");
	return b.data;
}
