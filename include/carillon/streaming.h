/*
 * Streaming export (docs/streaming.md): the events each streaming configuration covers are put to
 * its Kinesis data stream (PutRecords at CARILLON_KINESIS_URL, SigV4-signed with the AWS_*
 * credentials when set), read from the event log after a cursor persisted per (AppInstance, stream)
 * (sql/api/streaming.sql). One node of the deployment exports at a time, under a lease row in the
 * database; the others stand by and take over when its lease runs out.
 */
#ifndef CARILLON_STREAMING_H
#define CARILLON_STREAMING_H

#include <uv.h>

/* Start on `loop`, after the database pool, the outbound module and the listener. */
void carillon_streaming_start(uv_loop_t *loop);
/* Stop before the outbound module and the database pool shut down (their callbacks may still come). */
void carillon_streaming_stop(void);

#endif
