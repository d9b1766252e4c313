// Watches the messaging session of one AppInstanceUser with the real amazon-chime-sdk-js client and
// prints each event as one line: `node watch.cjs USER_ARN` (README.md, "Five minutes with Carillon").
// Credentials, region and endpoint come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY /
// AWS_DEFAULT_REGION and CARILLON_ENDPOINT; trust a self-signed certificate with NODE_EXTRA_CA_CERTS.
// (A real app would give the user temporary credentials of its own: POST /carillon/credentials.)
globalThis.WebSocket = require('ws'); // Node 20 has neither WebSocket nor CloseEvent
globalThis.CloseEvent ??= class extends Event {
  constructor(type, init = {}) { super(type); Object.assign(this, { code: 0, reason: '', wasClean: false }, init); }
};
const { ChimeSDKMessagingClient } = require('@aws-sdk/client-chime-sdk-messaging');
const { ConsoleLogger, DefaultMessagingSession, LogLevel, MessagingSessionConfiguration } = require('amazon-chime-sdk-js');

const userArn = process.argv[2];
const endpoint = process.env.CARILLON_ENDPOINT ?? 'https://127.0.0.1:8080';
const client = new ChimeSDKMessagingClient({ endpoint, region: process.env.AWS_DEFAULT_REGION ?? 'us-east-1' });
const config = new MessagingSessionConfiguration(userArn, require('node:crypto').randomUUID(), undefined, client);
const session = new DefaultMessagingSession(config, new ConsoleLogger('watch', LogLevel.WARN));
session.addObserver({
  messagingSessionDidStart: () => console.log('watch: session started'),
  messagingSessionDidReceiveMessage: (m) => {
    const p = JSON.parse(m.payload || '{}');
    console.log(`watch: ${m.type}${p.Content ? `: ${p.Content}` : ''}${p.Sender?.Name ? ` (from ${p.Sender.Name})` : ''}`);
  },
  messagingSessionDidStop: (e) => console.log(`watch: session stopped (${e.code} ${e.reason})`),
});
session.start().catch((err) => { console.error(`watch: ${err.message}`); process.exit(1); });
process.on('SIGINT', () => session.stop());
