-- Push delivery: the stored state of an AppInstanceUserEndpoint. A permanent delivery failure for
-- its token (APNs 410 / 400 BadDeviceToken, FCM 404 UNREGISTERED) makes it INACTIVE with
-- StatusReason INVALID_DEVICE_TOKEN; it then receives nothing until the device registers again.
-- (INVALID_PINPOINT_ARN is not stored: it is computed when the endpoint is read, from whether its
-- ResourceArn names an existing Pinpoint app.)
alter table carillon.app_instance_user_endpoints
    add column status        text not null default 'ACTIVE',   -- ACTIVE | INACTIVE
    add column status_reason text;                             -- INVALID_DEVICE_TOKEN when INACTIVE
