/*
 * Chime SDK Messaging: every operation is served by the generic SQL handler (writes through group
 * commit); the rules of each resource live in its file under sql/api/ (messaging_<resource>.sql),
 * one function per operation, and every write returns the events it causes.
 */
#include "carillon/api.h"

static const char *const messaging_ops[] = {
	/* sql/api/messaging_channel.sql */
	"CreateChannel", "DescribeChannel", "UpdateChannel", "DeleteChannel", "ListChannels", "SearchChannels",
	"ListChannelsModeratedByAppInstanceUser", "DescribeChannelModeratedByAppInstanceUser",
	"PutChannelExpirationSettings", "UpdateChannelReadMarker",
	/* sql/api/messaging_membership.sql */
	"CreateChannelMembership", "BatchCreateChannelMembership", "DescribeChannelMembership",
	"ListChannelMemberships", "DeleteChannelMembership", "DescribeChannelMembershipForAppInstanceUser",
	"ListChannelMembershipsForAppInstanceUser", "PutChannelMembershipPreferences",
	"GetChannelMembershipPreferences", "ListSubChannels",
	/* sql/api/messaging_moderator.sql */
	"CreateChannelModerator", "DescribeChannelModerator", "ListChannelModerators", "DeleteChannelModerator",
	/* sql/api/messaging_ban.sql */
	"CreateChannelBan", "DescribeChannelBan", "ListChannelBans", "DeleteChannelBan",
	/* sql/api/messaging_message.sql */
	"SendChannelMessage", "GetChannelMessage", "ListChannelMessages", "UpdateChannelMessage",
	"RedactChannelMessage", "DeleteChannelMessage", "GetChannelMessageStatus",
	/* sql/api/messaging_flow.sql */
	"CreateChannelFlow", "DescribeChannelFlow", "UpdateChannelFlow", "DeleteChannelFlow", "ListChannelFlows",
	"AssociateChannelFlow", "DisassociateChannelFlow", "ListChannelsAssociatedWithChannelFlow",
	"ChannelFlowCallback",
	/* sql/api/messaging_app_instance.sql */
	"GetMessagingSessionEndpoint", "PutMessagingStreamingConfigurations", "GetMessagingStreamingConfigurations",
	"DeleteMessagingStreamingConfigurations",
	0,
};

void carillon_api_messaging_init(void) { carillon_api_register_sql(messaging_ops); }
