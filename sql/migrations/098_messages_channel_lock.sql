-- A message's channel is held by the channel row's lock, not by a foreign key. Every path that
-- inserts a message locks its channel row first and holds the lock to commit -- send_channel_message
-- (its UPDATE of last_message_at, or SELECT ... FOR NO KEY UPDATE), send_batch (its lock statement)
-- and send_few (its check) -- and then reads the row again and refuses a channel that is gone. A
-- DeleteChannel (or an AppInstance's delete cascading to its channels) needs a lock on the row that
-- conflicts with that one, so it waits for the sends in flight to commit, and a send that waited for
-- a delete finds no channel: no message can outlive its channel, which is what the foreign key
-- checked once more for every row inserted. That check was a trigger call, an SPI query and a
-- KEY SHARE lock of the channel row a message: 8 % of the write lane's instructions for a batch of
-- 31 sends (BENCHMARKS.md, issue 11 session 17). The key's ON DELETE CASCADE becomes the trigger
-- below: a statement that deletes channels deletes their messages, once, by the primary key's
-- prefix.
create or replace function carillon.channels_delete_messages() returns trigger
language plpgsql as $$
begin
    delete from carillon.channel_messages m using gone g where m.channel_arn = g.arn;
    return null;
end $$;

do $$
begin
    if not exists (select 1 from pg_trigger where tgname = 'channels_delete_messages'
                      and tgrelid = 'carillon.channels'::regclass) then
        create trigger channels_delete_messages after delete on carillon.channels
            referencing old table as gone
            for each statement execute function carillon.channels_delete_messages();
    end if;
end $$;

alter table carillon.channel_messages drop constraint if exists channel_messages_channel_arn_fkey;
