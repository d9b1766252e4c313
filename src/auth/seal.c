/* Sealing small opaque values (NextTokens, session tokens) with purpose-bound subkeys of the
 * master key: XChaCha20-Poly1305 via crypto_secretbox, URL-safe base64 without padding. */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "carillon/auth.h"
#include "carillon/config.h"
#include "carillon/util.h"

#define MAX_SEALED_INPUT 8192

static void subkey(const char *purpose, unsigned char key[crypto_secretbox_KEYBYTES])
{
	crypto_generichash(key, crypto_secretbox_KEYBYTES, (const unsigned char *)purpose, strlen(purpose),
			   carillon_cfg.master_key, sizeof(carillon_cfg.master_key));
}

char *carillon_seal(const char *purpose, const void *data, size_t len)
{
	unsigned char key[crypto_secretbox_KEYBYTES];
	subkey(purpose, key);
	size_t blen = crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES + len;
	unsigned char *box = carillon_xmalloc(blen);
	randombytes_buf(box, crypto_secretbox_NONCEBYTES);
	crypto_secretbox_easy(box + crypto_secretbox_NONCEBYTES, data, len, box, key);
	size_t olen = sodium_base64_ENCODED_LEN(blen, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	char *out = carillon_xmalloc(olen);
	sodium_bin2base64(out, olen, box, blen, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	free(box);
	sodium_memzero(key, sizeof(key));
	return out;
}

void *carillon_open(const char *purpose, const char *sealed, size_t *len)
{
	size_t slen = strlen(sealed);
	if (slen > MAX_SEALED_INPUT)
		return NULL;
	unsigned char *box = carillon_xmalloc(slen + 1);
	size_t blen = 0;
	if (sodium_base642bin(box, slen + 1, sealed, slen, NULL, &blen, NULL,
			      sodium_base64_VARIANT_URLSAFE_NO_PADDING) ||
	    blen < crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES) {
		free(box);
		return NULL;
	}
	unsigned char key[crypto_secretbox_KEYBYTES];
	subkey(purpose, key);
	size_t mlen = blen - crypto_secretbox_NONCEBYTES - crypto_secretbox_MACBYTES;
	unsigned char *msg = carillon_xmalloc(mlen + 1);
	int bad = crypto_secretbox_open_easy(msg, box + crypto_secretbox_NONCEBYTES,
					     blen - crypto_secretbox_NONCEBYTES, box, key);
	free(box);
	sodium_memzero(key, sizeof(key));
	if (bad) {
		free(msg);
		return NULL;
	}
	msg[mlen] = '\0';
	*len = mlen;
	return msg;
}
