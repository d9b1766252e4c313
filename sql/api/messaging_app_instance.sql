-- Messaging settings of an AppInstance: the websocket session endpoint and the streaming
-- configurations.

-- GetMessagingSessionEndpoint: where chat clients open their websocket session. The value is a bare
-- host[:port] (no scheme, no path): the client builds "wss://" || Url || "/connect?..." and signs
-- the Host header with it (shared/spec/websocket-protocol.md 1.2). The gateway passes
-- CARILLON_PUBLIC_ENDPOINT, or its listen address when that is unset, as ctx.public_endpoint.
-- NetworkType (IPV4_ONLY | DUAL_STACK) is accepted and does not change the answer: one endpoint
-- serves both. User credentials may call this (a chat client needs it before it connects).
create or replace function carillon_api.get_messaging_session_endpoint(ctx jsonb, input jsonb) returns jsonb
language sql immutable as $$
    select jsonb_build_object('Endpoint', jsonb_strip_nulls(jsonb_build_object('Url', ctx->>'public_endpoint')))
$$;

-- Streaming configurations: which Kinesis data stream receives an AppInstance's Channel and
-- ChannelMessage data. Carillon stores them, and its exporter puts every event they cover to the
-- streams (docs/streaming.md; sql/api/streaming.sql keeps one cursor per stream).
--
-- Decisions where Chime's documentation is silent:
--   * PUT replaces the AppInstance's whole configuration with the list given (1..2 entries, one per
--     DataType; a DataType twice is BadRequest) and answers with what is now stored, in the order
--     given. To drop one data type, put the other alone; DeleteMessagingStreamingConfigurations
--     drops both.
--   * ResourceArn must be a Kinesis data stream ARN whose stream name has the documented
--     "chime-messaging-" prefix (BadRequest otherwise). The documented same-account/same-region
--     prerequisites are not checked: Carillon's account id is its own.
--   * Get answers NotFound when the AppInstance has none; Delete answers 204 whether or not any
--     were configured (NotFound only for an unknown AppInstance).
create or replace function carillon_api.put_messaging_streaming_configurations(ctx jsonb, input jsonb) returns jsonb
language plpgsql as $$
declare
    v_app_arn text := input->>'AppInstanceArn';
    v_app_id text := carillon.app_instance_lock(v_app_arn, false);
    v_confs jsonb;
    v_bad text;
begin
    select d into v_bad
      from (select c->>'DataType' as d from jsonb_array_elements(input->'StreamingConfigurations') c) s
     group by d having count(*) > 1 limit 1;
    if v_bad is not null then
        perform carillon.fail('CH400', format('DataType %s appears more than once in StreamingConfigurations', v_bad));
    end if;
    select c->>'ResourceArn' into v_bad
      from jsonb_array_elements(input->'StreamingConfigurations') c
     where c->>'ResourceArn' !~ '^arn:aws[a-z-]*:kinesis:[a-z0-9-]+:[0-9]{12}:stream/chime-messaging-[A-Za-z0-9_.-]{1,112}$'
     limit 1;
    if v_bad is not null then
        perform carillon.fail('CH400', format('ResourceArn %s is not the ARN of a Kinesis data stream named chime-messaging-*', v_bad));
    end if;
    select jsonb_agg(jsonb_build_object('DataType', c->>'DataType', 'ResourceArn', c->>'ResourceArn') order by n)
      into v_confs
      from jsonb_array_elements(input->'StreamingConfigurations') with ordinality as t(c, n);
    insert into carillon.streaming_configurations (app_instance_id, configurations)
    values (v_app_id, v_confs)
    on conflict (app_instance_id) do update set configurations = excluded.configurations;
    perform carillon.streaming_sync(v_app_id, v_confs);
    return jsonb_build_object('StreamingConfigurations', v_confs);
end $$;

create or replace function carillon_api.get_messaging_streaming_configurations(ctx jsonb, input jsonb) returns jsonb
language plpgsql stable as $$
declare
    v_app_id text := carillon.app_instance_id(input->>'AppInstanceArn');
begin
    return jsonb_build_object('StreamingConfigurations', carillon.must_exist(
        (select configurations from carillon.streaming_configurations where app_instance_id = v_app_id),
        format('AppInstance %s has no streaming configurations', input->>'AppInstanceArn')));
end $$;

create or replace function carillon_api.delete_messaging_streaming_configurations(ctx jsonb, input jsonb) returns jsonb
language plpgsql as $$
declare v_app_id text := carillon.app_instance_id(input->>'AppInstanceArn');
begin
    delete from carillon.streaming_configurations where app_instance_id = v_app_id;
    perform carillon.streaming_sync(v_app_id, '[]');
    return null;
end $$;
