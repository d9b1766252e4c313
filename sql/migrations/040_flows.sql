-- Channel flows: indexes for the keyset listings (ListChannelFlows walks an AppInstance's flows by
-- ARN; ListChannelsAssociatedWithChannelFlow walks a flow's channels by ARN). They replace the
-- single-column indexes of 003, which they cover (the flow_arn one also serves the foreign key).
create index channel_flows_app_instance_arn_idx on carillon.channel_flows (app_instance_id, arn);
drop index if exists carillon.channel_flows_app_instance_id_idx;
create index channels_flow_arn_arn_idx on carillon.channels (flow_arn, arn) where flow_arn is not null;
drop index if exists carillon.channels_flow_arn_idx;
