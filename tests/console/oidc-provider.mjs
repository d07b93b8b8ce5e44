// A real OpenID provider for tests/console.rs: the certified `oidc-provider` package (pinned in
// package.json), with its development login pages (any login, any password). The login decides
// the groups claim: "dpo-..." is in callvault-compliance, "sup-..." in callvault-supervisors,
// anyone else in neither. Usage: node oidc-provider.mjs PORT REDIRECT_URI CLIENT_SECRET
import Provider from 'oidc-provider';

const [port, redirectUri, clientSecret] = process.argv.slice(2);
const issuer = `http://127.0.0.1:${port}`;
const groups = (id) =>
  id.startsWith('dpo') ? ['callvault-compliance'] : id.startsWith('sup') ? ['callvault-supervisors'] : ['staff'];

const provider = new Provider(issuer, {
  clients: [{
    client_id: 'callvault-console',
    client_secret: clientSecret,
    redirect_uris: [redirectUri],
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  claims: { openid: ['sub', 'groups'], profile: ['name'] },
  // the groups claim in the ID token itself, as Entra ID puts its groups or roles claim
  conformIdTokenClaims: false,
  findAccount: async (ctx, id) => ({
    accountId: id,
    claims: async () => ({ sub: id, name: id, groups: groups(id) }),
  }),
  pkce: { required: () => true },
  cookies: { keys: ['callvault-test-only-cookie-key'] },
  ttl: { IdToken: 3600, AccessToken: 3600 },
});
provider.proxy = false;
provider.listen(Number(port), '127.0.0.1', () => {
  console.log(`ready ${issuer}`);
});
