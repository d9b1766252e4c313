// Creates the population for the messaging benchmarks through the public API (the real AWS SDK):
// an AppInstance, a sender, receivers, channels with members (the sender is in every channel).
//   node bench/setup.mjs --endpoint http://127.0.0.1:8080 --receivers 1000 --channels 100 \
//        --members 10 --out DIR      (credentials: CARILLON_ROOT_ACCESS_KEY_ID / _SECRET_ACCESS_KEY)
// Writes DIR/receivers.txt (user ARNs), DIR/sender.txt, DIR/paths.txt (one message path per channel).
import { createRequire } from 'node:module';
import { writeFileSync, mkdirSync } from 'node:fs';
const require = createRequire(new URL('../tests/conformance/package.json', import.meta.url));
const { ChimeSDKIdentityClient, CreateAppInstanceCommand, CreateAppInstanceUserCommand } = require('@aws-sdk/client-chime-sdk-identity');
const { ChimeSDKMessagingClient, CreateChannelCommand, BatchCreateChannelMembershipCommand } = require('@aws-sdk/client-chime-sdk-messaging');

const args = Object.fromEntries(process.argv.slice(2).reduce((a, v, i, all) => (i % 2 ? a : [...a, [v.replace(/^--/, ''), all[i + 1]]]), []));
const receivers = Number(args.receivers ?? 100), channels = Number(args.channels ?? 1), members = Number(args.members ?? receivers);
const cfg = {
  endpoint: args.endpoint, region: process.env.CARILLON_REGION ?? 'us-east-1', maxAttempts: 3,
  credentials: { accessKeyId: process.env.CARILLON_ROOT_ACCESS_KEY_ID, secretAccessKey: process.env.CARILLON_ROOT_SECRET_ACCESS_KEY },
};
const id = new ChimeSDKIdentityClient(cfg), msg = new ChimeSDKMessagingClient(cfg);

async function pool(items, n, fn) {
  const out = new Array(items.length);
  let next = 0;
  await Promise.all(Array.from({ length: n }, async () => {
    while (next < items.length) { const i = next++; out[i] = await fn(items[i], i); }
  }));
  return out;
}

const { AppInstanceArn: app } = await id.send(new CreateAppInstanceCommand({ Name: `bench-${Date.now()}` }));
const mkUser = (uid) => id.send(new CreateAppInstanceUserCommand({ AppInstanceArn: app, AppInstanceUserId: uid, Name: uid })).then((r) => r.AppInstanceUserArn);
const sender = await mkUser('sender');
const users = await pool([...Array(receivers).keys()], 32, (i) => mkUser(`r${i}`));
const paths = [];
await pool([...Array(channels).keys()], 8, async (c) => {
  const { ChannelArn } = await msg.send(new CreateChannelCommand({ AppInstanceArn: app, Name: `ch${c}`, ChimeBearer: sender, Mode: 'RESTRICTED', Privacy: 'PRIVATE' }));
  const mine = members >= receivers ? users : users.slice((c * members) % receivers, (c * members) % receivers + members);
  for (let i = 0; i < mine.length; i += 100)
    await msg.send(new BatchCreateChannelMembershipCommand({ ChannelArn, ChimeBearer: sender, MemberArns: mine.slice(i, i + 100), Type: 'DEFAULT' }));
  paths[c] = `/channels/${encodeURIComponent(ChannelArn)}/messages`;
});
mkdirSync(args.out, { recursive: true });
writeFileSync(`${args.out}/receivers.txt`, users.join('\n') + '\n');
writeFileSync(`${args.out}/sender.txt`, sender + '\n');
writeFileSync(`${args.out}/paths.txt`, paths.join('\n') + '\n');
console.log(`app ${app}: ${users.length} receivers, ${paths.length} channels of ${Math.min(members, receivers)} members`);
