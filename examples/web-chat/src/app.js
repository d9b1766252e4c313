// The web chat page: signs in through the backend (which hands out a user-scoped credential), then
// talks to Carillon directly — the REST API with @aws-sdk/client-chime-sdk-messaging and the
// messaging session (websocket) with amazon-chime-sdk-js's DefaultMessagingSession — exactly as a
// page talks to Amazon Chime. Carillon is another origin than this page: CORS.
import {
  ChimeSDKMessagingClient,
  CreateChannelCommand,
  CreateChannelMembershipCommand,
  ListChannelMembershipsForAppInstanceUserCommand,
  ListChannelMessagesCommand,
  ListChannelsCommand,
  SendChannelMessageCommand,
} from '@aws-sdk/client-chime-sdk-messaging';
import {
  ConsoleLogger,
  DefaultMessagingSession,
  LogLevel,
  MessagingSessionConfiguration,
} from 'amazon-chime-sdk-js';

const $ = (id) => document.getElementById(id);
const state = { me: null, client: null, session: null, current: null, joined: new Set(), shown: new Set(), names: new Map() };

function showError(e) {
  $('error').textContent = e ? `${e.name ?? 'Error'}: ${e.message ?? e}` : '';
  if (e) console.error(e);
}

function setWsState(s, detail = '') {
  const el = $('ws-state');
  el.className = `state ${s}`;
  el.dataset.state = s;
  el.textContent = `websocket: ${s}${detail ? ` (${detail})` : ''}`;
}

const bearer = () => ({ ChimeBearer: state.me.userArn });

async function signIn(name) {
  const res = await fetch('/api/sign-in', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name }) });
  const cfg = await res.json();
  if (!res.ok) throw new Error(cfg.message ?? `sign-in: ${res.status}`);
  state.me = cfg;
  state.client = new ChimeSDKMessagingClient({
    region: cfg.region,
    endpoint: cfg.endpoint,
    // Expiration comes as epoch seconds; the SDK wants a Date (and refreshes nothing by itself:
    // an hour is plenty for a demo — sign in again after).
    credentials: { ...cfg.credentials, expiration: new Date(cfg.credentials.expiration * 1000) },
  });
  $('who').textContent = name;
  $('sign-in').hidden = true;
  $('chat').hidden = false;
  await startSession();
  await refreshChannels();
}

async function startSession() {
  const conf = new MessagingSessionConfiguration(state.me.userArn, crypto.randomUUID(), undefined, state.client);
  const session = new DefaultMessagingSession(conf, new ConsoleLogger('messaging', LogLevel.WARN));
  session.addObserver({
    messagingSessionDidStartConnecting: (reconnecting) => setWsState('connecting', reconnecting ? 'reconnecting' : ''),
    messagingSessionDidStart: () => setWsState('open'),
    messagingSessionDidStop: (event) => setWsState('closed', String(event?.code ?? '')),
    messagingSessionDidReceiveMessage: (message) => onEvent(message),
  });
  state.session = session;
  setWsState('connecting');
  session.start().catch((e) => showError(e));
}

function onEvent(message) {
  if (!message.payload) return;
  let payload;
  try {
    payload = JSON.parse(message.payload);
  } catch {
    return;
  }
  if (message.type === 'CREATE_CHANNEL_MESSAGE' && payload.ChannelArn === state.current) showMessage(payload);
  if (message.type === 'CREATE_CHANNEL' || message.type === 'CREATE_CHANNEL_MEMBERSHIP') refreshChannels().catch(showError);
}

async function refreshChannels() {
  const [pub, mine] = await Promise.all([
    state.client.send(new ListChannelsCommand({ AppInstanceArn: state.me.appInstanceArn, Privacy: 'PUBLIC', MaxResults: 50, ...bearer() })),
    state.client.send(new ListChannelMembershipsForAppInstanceUserCommand({ AppInstanceUserArn: state.me.userArn, MaxResults: 50, ...bearer() })),
  ]);
  state.joined = new Set((mine.ChannelMemberships ?? []).map((m) => m.ChannelSummary.ChannelArn));
  const list = $('channels');
  list.replaceChildren();
  for (const c of pub.Channels ?? []) {
    state.names.set(c.ChannelArn, c.Name);
    const li = document.createElement('li');
    li.dataset.channel = c.Name;
    li.classList.toggle('current', c.ChannelArn === state.current);
    const name = document.createElement('span');
    name.textContent = `# ${c.Name}`;
    const button = document.createElement('button');
    const joined = state.joined.has(c.ChannelArn);
    button.textContent = joined ? 'Open' : 'Join';
    button.dataset.action = joined ? 'open' : 'join';
    button.onclick = () => (joined ? openChannel(c.ChannelArn) : join(c.ChannelArn)).catch(showError);
    li.append(name, button);
    list.append(li);
  }
}

async function join(channelArn) {
  await state.client.send(new CreateChannelMembershipCommand({ ChannelArn: channelArn, MemberArn: state.me.userArn, Type: 'DEFAULT', ...bearer() }));
  state.joined.add(channelArn);
  await openChannel(channelArn);
}

async function openChannel(channelArn) {
  state.current = channelArn;
  state.shown.clear();
  $('messages').replaceChildren();
  $('channel-title').textContent = `# ${state.names.get(channelArn) ?? ''}`;
  $('send').hidden = false;
  const out = await state.client.send(new ListChannelMessagesCommand({ ChannelArn: channelArn, MaxResults: 50, ...bearer() }));
  for (const m of (out.ChannelMessages ?? []).reverse()) showMessage({ ...m, ChannelArn: channelArn });
  await refreshChannels();
  $('text').focus();
}

function showMessage(m) {
  if (state.shown.has(m.MessageId)) return;
  state.shown.add(m.MessageId);
  const li = document.createElement('li');
  li.dataset.messageId = m.MessageId;
  const sender = document.createElement('span');
  sender.className = 'sender';
  sender.textContent = m.Sender?.Name ?? '?';
  const text = document.createElement('span');
  text.className = 'content';
  text.textContent = m.Content ?? '';
  const time = document.createElement('span');
  time.className = 'time';
  const t = m.CreatedTimestamp ? new Date(m.CreatedTimestamp) : new Date();
  time.textContent = t.toLocaleTimeString();
  li.append(sender, text, time);
  $('messages').append(li);
}

$('sign-in').onsubmit = (e) => {
  e.preventDefault();
  showError(null);
  signIn($('name').value.trim()).catch(showError);
};

$('send').onsubmit = (e) => {
  e.preventDefault();
  const content = $('text').value;
  if (!content || !state.current) return;
  $('text').value = '';
  state.client
    .send(new SendChannelMessageCommand({
      ChannelArn: state.current, Content: content, Type: 'STANDARD', Persistence: 'PERSISTENT', ClientRequestToken: crypto.randomUUID(), ...bearer(),
    }))
    .catch(showError);
};

$('new-channel').onsubmit = (e) => {
  e.preventDefault();
  const name = $('channel-name').value.trim();
  if (!name) return;
  $('channel-name').value = '';
  state.client
    .send(new CreateChannelCommand({
      AppInstanceArn: state.me.appInstanceArn, Name: name, Mode: 'UNRESTRICTED', Privacy: 'PUBLIC', ClientRequestToken: crypto.randomUUID(), ...bearer(),
    }))
    .then((out) => openChannel(out.ChannelArn))
    .catch(showError);
};
