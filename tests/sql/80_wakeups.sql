-- Who a write wakes (carillon.events_heard, migration 100): a node's flag is raised by the
-- registration of its sessions, under the event lock when it was down, and lowered by its heartbeat
-- when it has none; a write notifies only when a flag is up or an AppInstance streams. Each test
-- starts from no node and no stream (its transaction is rolled back: other nodes' rows come back).
delete from carillon.ws_nodes;
delete from carillon.streaming_cursors;

-- This session holds the event lock (pg_advisory_xact_lock(7263, 1), which every writer takes).
create function pg_temp.event_lock_held() returns boolean language sql as $$
    select exists (select 1 from pg_locks
                    where locktype = 'advisory' and classid = 7263 and objid = 1 and objsubid = 2
                      and pid = pg_backend_pid() and granted)
$$;

-- test: a registration raises its node's flag under the event lock; the heartbeat of a node without sessions lowers it
do $$
declare
    v_node uuid := gen_random_uuid();
    v_ok boolean;
begin
    assert not carillon.events_heard(), 'heard with no node at all';
    assert not pg_temp.event_lock_held();
    select r_ok into v_ok from carillon.ws_register_many(v_node, '{1}', '{arn:user:a}', 10, 10);
    assert v_ok, 'the registration was refused';
    assert carillon.events_heard(), 'a node with a session is not heard';
    assert pg_temp.event_lock_held(), 'the flag was raised without the event lock';
    perform carillon.ws_heartbeat(v_node, '{}', 60);
    assert carillon.events_heard(), 'a heartbeat that says nothing of the flag lowered it';
    perform carillon.ws_heartbeat(v_node, '{1}', 60, false);
    assert not carillon.events_heard(), 'the heartbeat of a node without sessions left its flag up';
    perform carillon.ws_heartbeat(v_node, '{}', 60, true);
    assert carillon.events_heard(), 'the heartbeat of a node with sessions did not raise its flag';
end $$;

-- test: a node that already listens registers without the event lock; a refused registration raises nothing
do $$
declare
    v_up uuid := gen_random_uuid();
    v_down uuid := gen_random_uuid();
    v_ok boolean;
begin
    perform carillon.ws_heartbeat(v_down, '{}', 60, false);
    select r_ok into v_ok from carillon.ws_register_many(v_down, '{1}', '{arn:user:b}', 0, 10);
    assert not v_ok, 'a registration over the quota was taken';
    assert not carillon.events_heard(), 'a refused registration raised the flag';
    assert not pg_temp.event_lock_held(), 'a refused registration took the event lock';
    insert into carillon.ws_nodes (node, listening) values (v_up, true);
    select r_ok into v_ok from carillon.ws_register_many(v_up, '{1}', '{arn:user:c}', 10, 10);
    assert v_ok;
    assert not pg_temp.event_lock_held(), 'a node already listening took the event lock to register';
    -- the other node's flag is its own
    assert not (select listening from carillon.ws_nodes where node = v_down);
end $$;

-- test: an AppInstance that streams makes events_heard (every writer's test) hold with no node listening
select pg_temp.make_fixture();
do $$
begin
    delete from carillon.ws_nodes;
    assert not carillon.events_heard();
    insert into carillon.streaming_cursors (app_instance_id, stream_arn, since, position)
    select id, 'arn:aws:kinesis:us-east-1:111122223333:stream/wake', '{}', 0
      from carillon.app_instances where arn = pg_temp.fx('app');
    assert carillon.events_heard(), 'a streamed AppInstance is not heard';
end $$;
