-- Time-ordered message ids. A persistent message's id was the md5 of its ClientRequestToken (with
-- the channel and the sender), so that the primary key (channel_arn, message_id) was also the send's
-- idempotency record. Random keys put every insert on a random page of that index: once the index
-- outgrows shared_buffers (10 minutes at 5,000 msg/s into one channel: about 3 million entries of
-- 150 bytes), every send reads a page from outside the cache, dirties it, and writes a full-page
-- image into the WAL after each checkpoint (measured: 0.63 full-page images and 1.6 blocks read per
-- message by minute 10; the send rate fell by a quarter).
--
-- A message id now starts with the request time (milliseconds, 12 hex digits) and ends with 20 hex
-- digits of that md5, so a channel's new messages go to the right edge of the primary key. The
-- idempotency record is request_key, the full md5 as a uuid: 16 bytes per entry instead of the
-- channel's ARN and the id, a unique index about a fifth of the size. Messages stored before
-- this migration keep their ids; their request_key is their id (an md5, or for a message sent
-- without a token a random uuid that no token's md5 can meet), so a late retry of such a send still
-- finds it.
alter table carillon.channel_messages add column if not exists request_key uuid;
update carillon.channel_messages set request_key = message_id::uuid
 where request_key is null and message_id ~ '^[0-9a-f]{32}$';
create unique index if not exists channel_messages_request_key_idx on carillon.channel_messages (request_key);
