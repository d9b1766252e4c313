-- Channel messages: elastic channels list the messages of one sub-channel (ListChannelMessages with
-- SubChannelId); this index keeps that a keyset scan instead of a filter over the whole channel's
-- history. Only elastic messages carry a sub_channel_id, so ordinary channels pay nothing for it.
create index channel_messages_sub_channel_idx on carillon.channel_messages (channel_arn, sub_channel_id, created_at, seq)
    where sub_channel_id is not null;
