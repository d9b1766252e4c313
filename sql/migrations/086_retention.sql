-- Retention sweeps (carillon.retention_sweep) walk the channels of one AppInstance in ARN order,
-- from a cursor: an index in exactly that order keeps each step a range scan.
create index if not exists channels_app_instance_arn_idx on carillon.channels (app_instance_id, arn);
