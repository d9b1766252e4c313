-- Periodic maintenance, run by every node's janitor (src/janitor.c); idempotent and cheap.
--   * AppInstanceUsers whose ExpirationSettings have run out are deleted (with their endpoints,
--     admin grants and tags), as Chime does.
--   * ClientRequestToken records older than a day are forgotten, and so are events.
create or replace function carillon.janitor(p_now timestamptz) returns int
language plpgsql as $$
declare
    v_deleted int := 0;
    v_arn text;
begin
    for v_arn in
        select arn from carillon.app_instance_users
         where expiration_criterion = 'CREATED_TIMESTAMP'
           and created_at + make_interval(days => expiration_days) <= p_now
         for update skip locked
    loop
        delete from carillon.app_instance_users where arn = v_arn;
        delete from carillon.app_instance_admins where admin_arn = v_arn;
        perform carillon.drop_tags(v_arn);
        v_deleted := v_deleted + 1;
    end loop;
    delete from carillon.idempotency where created_at < p_now - interval '1 day';
    -- The event log is a bounded window: sessions read it live, and resuming clients may catch up
    -- on the last day (see carillon.resume_window).
    delete from carillon.events where created_at < p_now - interval '1 day';
    return v_deleted;
end $$;
