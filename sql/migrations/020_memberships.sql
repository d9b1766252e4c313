-- Channel memberships: indexes for the membership listings and for elastic channels.
--
-- ListChannelMembershipsForAppInstanceUser walks a user's memberships by channel ARN; this index
-- replaces the single-column (member_arn) index of 003, which it covers.
create index channel_memberships_member_channel_idx on carillon.channel_memberships (member_arn, channel_arn);
drop index if exists carillon.channel_memberships_member_arn_idx;

-- ListChannelMemberships with the HIDDEN filter: hidden members are few, found without walking
-- every member of a large channel.
create index channel_memberships_hidden_idx on carillon.channel_memberships (channel_arn, member_arn)
    where type = 'HIDDEN';

-- Elastic channels: sub-channels are derived from the memberships' sub_channel_id (ListSubChannels,
-- the balancing of new members, ListChannelMemberships filtered by SubChannelId).
create index channel_memberships_sub_channel_idx on carillon.channel_memberships (channel_arn, sub_channel_id, member_arn)
    where sub_channel_id is not null;
