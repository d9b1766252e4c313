-- Channels, moderators and bans: indexes for their listings and the janitor.
--   * ListChannelsModeratedByAppInstanceUser walks one identity's moderated channels by channel ARN;
--     (moderator_arn, channel_arn) replaces the single-column index of 003, which it covers.
--   * Bans by member, for removing an identity's bans when the identity goes.
--   * The janitor's channel expiry looks only at channels with ExpirationSettings.
create index channel_moderators_moderator_channel_idx on carillon.channel_moderators (moderator_arn, channel_arn);
drop index if exists carillon.channel_moderators_moderator_arn_idx;
create index channel_bans_member_arn_idx on carillon.channel_bans (member_arn);
create index channels_expiring_idx on carillon.channels (arn) where expiration_days is not null;
