// Signed API calls against an installed Carillon (tests/package/run.sh): the stock AWS SDK client
// from tests/conformance's node_modules creates an AppInstance with the root credential and reads
// it back, and a request signed with a wrong secret must be refused.
//   node signed-call.mjs ENDPOINT ACCESS_KEY_ID SECRET_ACCESS_KEY
import { createRequire } from 'node:module';

const require = createRequire(new URL('../conformance/package.json', import.meta.url));
const {
	ChimeSDKIdentityClient, CreateAppInstanceCommand, DescribeAppInstanceCommand,
	ListAppInstancesCommand,
} = require('@aws-sdk/client-chime-sdk-identity');

const [endpoint, accessKeyId, secretAccessKey] = process.argv.slice(2);
const client = (secret) => new ChimeSDKIdentityClient({
	endpoint, region: 'us-east-1', maxAttempts: 1,
	credentials: { accessKeyId, secretAccessKey: secret },
});

const root = client(secretAccessKey);
const name = `package-test-${process.pid}`;
const { AppInstanceArn } = await root.send(new CreateAppInstanceCommand({ Name: name }));
const { AppInstance } = await root.send(new DescribeAppInstanceCommand({ AppInstanceArn }));
if (AppInstance?.Name !== name || AppInstance?.AppInstanceArn !== AppInstanceArn) {
	throw new Error(`DescribeAppInstance returned ${JSON.stringify(AppInstance)}`);
}
let refused = null;
try {
	await client(secretAccessKey.replace(/.$/, (c) => (c === 'A' ? 'B' : 'A')))
		.send(new ListAppInstancesCommand({}));
} catch (err) {
	refused = err.name;
}
if (refused !== 'UnauthorizedClientException') {
	throw new Error(`a request signed with a wrong secret was not refused (got ${refused ?? 'success'})`);
}
console.log(JSON.stringify({ AppInstanceArn, wrongSecret: refused }));
