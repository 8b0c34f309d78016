// mint.js mints widget tokens with the npm package jsonwebtoken (v9), the way
// a customer's Node backend does, for verifier/conformance_test.go.
//
// Input, on stdin, one JSON object:
//   {"key": "sk_live_…", "wrongKey": "sk_live_…", "userId": "…", "userMetadata": {"k": "v"}}
// Output, on stdout, one JSON object: "library" (name and version) and each
// variant's token:
//   good      the documented call: HS256, the project's key, expiresIn '24h'
//   wrongKey  the same call signed with another key
//   expired   HS256, the project's key, exp 120 s before iat
//   hs512     HS512 with the project's key
//   none      alg "none", no key, no signature
//
// Run: node mint.js < spec.json   (after `npm ci` in this folder)
'use strict';

const jwt = require('jsonwebtoken');

function readStdin() {
  return require('fs').readFileSync(0, 'utf8');
}

function main() {
  const spec = JSON.parse(readStdin());
  const { key, wrongKey, userId, userMetadata } = spec;
  if (!key || !wrongKey || !userId) {
    throw new Error('spec needs key, wrongKey and userId');
  }
  const out = {
    library: 'jsonwebtoken ' + require('jsonwebtoken/package.json').version,
    // The call of Hissuno's documentation for Node, verbatim.
    good: jwt.sign({ userId, userMetadata }, key, { algorithm: 'HS256', expiresIn: '24h' }),
    wrongKey: jwt.sign({ userId, userMetadata }, wrongKey, { algorithm: 'HS256', expiresIn: '24h' }),
    // A negative expiresIn puts exp before iat: expired 120 s ago, past the
    // verifier's 60 s leeway.
    expired: jwt.sign({ userId, userMetadata }, key, { algorithm: 'HS256', expiresIn: -120 }),
    hs512: jwt.sign({ userId, userMetadata }, key, { algorithm: 'HS512', expiresIn: '24h' }),
    // jsonwebtoken v9 signs alg "none" only when asked by name, and then
    // wants no key at all (sign.js: `!secretOrPrivateKey && algorithm !== 'none'`).
    none: jwt.sign({ userId, userMetadata }, undefined, { algorithm: 'none', expiresIn: '24h' }),
  };
  process.stdout.write(JSON.stringify(out) + '\n');
}

try {
  main();
} catch (err) {
  process.stderr.write('mint.js: ' + (err && err.message ? err.message : String(err)) + '\n');
  process.exit(1);
}
