/* Private to the Pinpoint service (src/api/pinpoint/): its registration pieces, one per resource. */
#ifndef CARILLON_API_PINPOINT_INTERNAL_H
#define CARILLON_API_PINPOINT_INTERNAL_H

/* The Update*Channel handlers (channels.c): validate and seal the secrets, then the SQL handler. */
void carillon_pinpoint_channels_init(void);

#endif
