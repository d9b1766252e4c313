-- An event's payload as the JSON text the websocket frame carries (payload_text), written by the
-- send paths as text and read by every node's listener as it is. As jsonb it was built twice on
-- the write lane (jsonb_build_object, then jsonb_strip_nulls, each a binary document) and printed
-- again by every node's listener for every event it read (payload::text); a send's payload is about
-- 500 bytes. Rows written before this migration keep their jsonb payload (payload_text NULL): the
-- readers take coalesce(payload_text, payload::text), and the janitor's trim removes them within
-- the log's window (a day; a week for streams). Adding a nullable column and dropping a NOT NULL
-- rewrite nothing, so the migration does not hold the log's lock for longer than an instant.
alter table carillon.events add column if not exists payload_text text;
alter table carillon.events alter column payload drop not null;
do $$
begin
    if not exists (select 1 from pg_constraint where conname = 'events_payload_present'
                      and conrelid = 'carillon.events'::regclass) then
        -- NOT VALID: checked for every new row; the existing rows all have their jsonb payload.
        alter table carillon.events add constraint events_payload_present
            check (payload is not null or payload_text is not null) not valid;
    end if;
end $$;
