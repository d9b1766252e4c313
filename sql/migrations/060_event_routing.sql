-- Routing facts as data: every event row says, besides its audience (audience + arns), what it
-- does to the channel index of the sessions that hear it, so that no reader has to know event
-- types or parse payloads:
--   joins   users whose sessions join the channel before the event is delivered
--           (CREATE_/BATCH_CREATE_CHANNEL_MEMBERSHIP);
--   leaves  users whose sessions leave the channel after it is delivered
--           (DELETE_CHANNEL_MEMBERSHIP);
--   closes  every session leaves the channel after it is delivered (DELETE_CHANNEL).
-- New rows get them from the function that builds the event (carillon.event, in the write's own
-- transaction); the rows already in the log (at most a day of them: the janitor trims it) get
-- them here, computed once from their payloads.
alter table carillon.events
    add column joins  text[]  not null default '{}',
    add column leaves text[]  not null default '{}',
    add column closes boolean not null default false;

with facts as (
    select e.position,
           -- the members a membership event names: Member.Arn, or Members[].Arn for a batch
           coalesce(case when jsonb_typeof(e.payload #> '{Member,Arn}') = 'string'
                         then array[e.payload #>> '{Member,Arn}'] end,
                    array(select m->>'Arn'
                            from jsonb_array_elements(case when jsonb_typeof(e.payload->'Members') = 'array'
                                                           then e.payload->'Members' else '[]' end) m
                           where jsonb_typeof(m->'Arn') = 'string')) as members,
           e.event_type
      from carillon.events e
     where e.event_type in ('CREATE_CHANNEL_MEMBERSHIP', 'BATCH_CREATE_CHANNEL_MEMBERSHIP',
                            'DELETE_CHANNEL_MEMBERSHIP', 'DELETE_CHANNEL')
)
update carillon.events e
   set joins  = case when f.event_type <> 'DELETE_CHANNEL_MEMBERSHIP' and f.event_type <> 'DELETE_CHANNEL'
                     then f.members else '{}' end,
       leaves = case when f.event_type = 'DELETE_CHANNEL_MEMBERSHIP' then f.members else '{}' end,
       closes = f.event_type = 'DELETE_CHANNEL'
  from facts f
 where e.position = f.position;
