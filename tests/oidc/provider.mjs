// A real OpenID provider for keygate's tests: oidc-provider (npm, certified
// by the OpenID Foundation) on a free 127.0.0.1 port over plain http, as the
// tests start it (tests/it/support/oidc.rs).
//
//   node tests/oidc/provider.mjs MODULE_DIR CONFIG_JSON
//
// MODULE_DIR is where scripts/test.sh installed the package
// (target/oidc-provider). CONFIG_JSON names the test's clients and users:
//   {"clients": [{"client_id", "client_secret", "redirect_uri", "alg"}],
//    "users": [{"id", "password", "email", "groups": [...]}]}
// Prints "ready PORT" once it answers. The signing keys (one RS256, one
// ES256) are made at start; each client's ID tokens use its `alg`.
//
// Sign-in is a minimal form of our own (oidc-provider's devInteractions take
// any password): #login, #password, #sign-in; a wrong password shows the
// form again with "wrong login or password". Consent is implied for every
// client (a first-party provider's usual setting), so a sign-in goes
// straight back to the client. Claims follow the scopes asked for, and, as
// oidc-provider does by default in the code flow, only `sub` is in the ID
// token: the rest comes from the userinfo endpoint.

import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const [moduleDir, configJson] = process.argv.slice(2);
if (!moduleDir || !configJson) {
  console.error('usage: provider.mjs MODULE_DIR CONFIG_JSON');
  process.exit(2);
}
const config = JSON.parse(configJson);
const entry = join(moduleDir, 'node_modules', 'oidc-provider', 'lib', 'index.js');
const { default: Provider } = await import(pathToFileURL(entry).href);

const users = new Map(config.users.map((u) => [u.id, u]));

function signingKey(kid, options) {
  const [type, params] = options;
  const { privateKey } = generateKeyPairSync(type, params);
  return { ...privateKey.export({ format: 'jwk' }), kid, use: 'sig' };
}

const keys = [
  { ...signingKey('rsa-1', ['rsa', { modulusLength: 2048 }]), alg: 'RS256' },
  { ...signingKey('ec-1', ['ec', { namedCurve: 'P-256' }]), alg: 'ES256' },
];

const server = createServer();
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const { port } = server.address();
const issuer = `http://127.0.0.1:${port}`;

const provider = new Provider(issuer, {
  clients: config.clients.map((c) => ({
    client_id: c.client_id,
    client_secret: c.client_secret,
    redirect_uris: [c.redirect_uri],
    response_types: ['code'],
    grant_types: ['authorization_code'],
    id_token_signed_response_alg: c.alg,
    token_endpoint_auth_method: 'client_secret_basic',
  })),
  jwks: { keys },
  cookies: { keys: [randomBytes(32).toString('hex')] },
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['preferred_username', 'name'],
    groups: ['groups'],
  },
  // Every authorization request must carry an S256 PKCE challenge.
  pkce: { required: () => true },
  features: {
    devInteractions: { enabled: false },
    // RP-initiated logout, with pages that load nothing from elsewhere.
    rpInitiatedLogout: {
      enabled: true,
      async logoutSource(ctx, form) {
        ctx.body = `<!doctype html><html><head><title>Sign out</title></head><body>
<h1>Sign out of the test provider?</h1>${form}
<button id="logout-yes" type="submit" form="op.logoutForm" value="yes" name="logout">Yes, sign me out</button>
</body></html>`;
      },
      async postLogoutSuccessSource(ctx) {
        ctx.body = '<!doctype html><html><head><title>Signed out</title></head><body><h1 id="signed-out">Signed out</h1></body></html>';
      },
    },
  },
  async findAccount(_ctx, id) {
    const user = users.get(id);
    if (!user) return undefined;
    return {
      accountId: id,
      async claims() {
        return {
          sub: id,
          email: user.email,
          email_verified: true,
          preferred_username: id,
          name: id,
          groups: user.groups,
        };
      },
    };
  },
  // Consent implied: a grant of what the client asked for.
  async loadExistingGrant(ctx) {
    const { client, session, params } = ctx.oidc;
    const grant = new ctx.oidc.provider.Grant({
      clientId: client.clientId,
      accountId: session.accountId,
    });
    grant.addOIDCScope(params.scope);
    await grant.save();
    return grant;
  },
});

const escape = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function loginForm(res, uid, error) {
  res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
  res.end(`<!doctype html><html><head><title>Test provider sign-in</title></head><body>
<h1>Test provider</h1>${error ? `<p id="error">${escape(error)}</p>` : ''}
<form method="post" action="/interaction/${escape(uid)}/login">
<input id="login" name="login" autocomplete="off"><input id="password" name="password" type="password">
<button id="sign-in" type="submit">Sign in</button></form></body></html>`);
}

async function formBody(req) {
  let text = '';
  for await (const chunk of req) {
    text += chunk;
    if (text.length > 16384) throw new Error('form too large');
  }
  return new URLSearchParams(text);
}

// The sign-in form; everything else is oidc-provider's.
const callback = provider.callback();
server.on('request', async (req, res) => {
  const path = new URL(req.url, issuer).pathname;
  const match = path.match(/^\/interaction\/([^/]+)(\/login)?$/);
  if (!match) {
    callback(req, res);
    return;
  }
  try {
    const details = await provider.interactionDetails(req, res);
    if (details.uid !== match[1] || details.prompt.name !== 'login') {
      res.writeHead(400).end('unexpected interaction');
      return;
    }
    if (req.method === 'GET' && !match[2]) {
      loginForm(res, details.uid);
      return;
    }
    if (req.method !== 'POST' || !match[2]) {
      res.writeHead(405).end();
      return;
    }
    const form = await formBody(req);
    const user = users.get(form.get('login'));
    if (!user || user.password !== form.get('password')) {
      loginForm(res, details.uid, 'wrong login or password');
      return;
    }
    await provider.interactionFinished(req, res, { login: { accountId: user.id } }, {
      mergeWithLastSubmission: false,
    });
  } catch (e) {
    res.writeHead(400, { 'content-type': 'text/plain' }).end(`interaction failed: ${e.message}`);
  }
});

console.log(`ready ${port}`);
