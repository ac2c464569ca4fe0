// End-to-end-encryption integration test driven by a real client: matrix-js-sdk
// (the engine of Element Web) with its Rust crypto stack (WASM), as Element uses it.
//
//   npm ci --prefix tests/clients/js      (once: matrix-js-sdk 36.2.0, the last for Node 20)
//   node tests/clients/js/e2ee.mjs <homeserver_base_url>
//
// The server must allow open registration (m.login.dummy); give it a generous
// registration rate limit, or the 429s it answers are waited out (see retry429).
//
// Progress goes to stderr; one JSON line with the results goes to stdout.
// Exit 0 when every check passed, 1 otherwise (the failing step is on stderr).
// E2EE_SDK_LOG=debug|info|warn|error sets how much of the js-sdk's own logging reaches
// stderr (default warn). E2EE_TIMEOUT_MS overrides the overall timeout (default 90000).

// The js-sdk and the Rust crypto's tracing (always at DEBUG) log through console.*, and
// console.log/info/debug go to stdout in Node: send what we keep to stderr, so that
// stdout carries only the result line, and drop the chatter below E2EE_SDK_LOG.
const SDK_LOG = process.env.E2EE_SDK_LOG || "warn";
const LEVELS = ["trace", "debug", "info", "warn", "error"];
const writeResult = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");
const toStderr = console.error.bind(console);
for (const k of ["trace", "debug", "info", "log", "warn"]) {
  const lvl = k === "log" ? "info" : k;
  console[k] = LEVELS.indexOf(lvl) >= LEVELS.indexOf(SDK_LOG) ? toStderr : () => {};
}

const sdk = await import("matrix-js-sdk");
const { logger } = await import("matrix-js-sdk/lib/logger.js");
logger.setLevel(SDK_LOG);

const BASE = (process.argv[2] || "").replace(/\/+$/, "");
if (!BASE) {
  console.error("usage: node e2ee.mjs <homeserver_base_url>");
  process.exit(2);
}
const OVERALL_TIMEOUT_MS = Number(process.env.E2EE_TIMEOUT_MS || 90_000);
const WAIT_MS = 20_000;
const started = Date.now();
const log = (...a) => console.error(`[e2ee ${((Date.now() - started) / 1000).toFixed(1)}s]`, ...a);

const clients = [];
const results = {};
let step = "startup";

function fail(msg) {
  console.error(`FAIL at step "${step}": ${msg}`);
  console.error(`partial results: ${JSON.stringify(results)}`);
  for (const c of clients) try { c.stopClient(); } catch {}
  process.exit(1);
}
setTimeout(() => fail(`overall timeout of ${OVERALL_TIMEOUT_MS / 1000}s exceeded`), OVERALL_TIMEOUT_MS).unref();
process.on("unhandledRejection", (e) => log("warning: unhandled rejection:", e?.stack || e));

function setStep(s) { step = s; log(`--- ${s}`); }
function describeErr(e) {
  if (e?.httpStatus) return `HTTP ${e.httpStatus} ${e.errcode || ""} ${e.data ? JSON.stringify(e.data) : e.message} (${e.url || ""})`;
  return e?.stack || String(e);
}

// Poll `fn` until it returns a truthy value; fail with `what` after `ms`.
async function waitFor(what, fn, ms = WAIT_MS, intervalMs = 250) {
  const deadline = Date.now() + ms;
  let lastErr;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) { lastErr = e; }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  throw new Error(`timed out after ${ms / 1000}s waiting for ${what}` + (lastErr ? `; last error: ${describeErr(lastErr)}` : ""));
}

// ---- accounts -------------------------------------------------------------------

// /register and /login are rate limited per IP (each UIA leg counts): honour 429s.
async function retry429(what, fn) {
  for (;;) {
    try {
      return await fn();
    } catch (e) {
      if (e.httpStatus !== 429) throw e;
      const ms = Math.min(e.data?.retry_after_ms ?? 5000, 30_000) + 100;
      log(`${what}: rate limited (429), retrying in ${(ms / 1000).toFixed(1)}s`);
      await new Promise((r) => setTimeout(r, ms));
    }
  }
}

// POST /register with the UIA dance: a first call without `auth` gets a 401 carrying
// a session, then we complete m.login.dummy with that session.
async function register(username, password) {
  const tmp = sdk.createClient({ baseUrl: BASE });
  const body = { username, password, initial_device_display_name: `${username} device 1` };
  try {
    return await retry429(`register ${username}`, () => tmp.registerRequest(body));
  } catch (e) {
    if (e.httpStatus !== 401 || !e.data?.flows) throw e;
    const flows = e.data.flows.map((f) => f.stages.join(","));
    if (!e.data.flows.some((f) => f.stages.length === 1 && f.stages[0] === "m.login.dummy")) {
      throw new Error(`server offers no m.login.dummy registration flow: ${JSON.stringify(flows)}`);
    }
    const auth = { type: "m.login.dummy", session: e.data.session };
    return await retry429(`register ${username} (m.login.dummy)`, () => tmp.registerRequest({ ...body, auth }));
  }
}

async function login(username, password, deviceName) {
  const tmp = sdk.createClient({ baseUrl: BASE });
  return await retry429(`login ${username}`, () => tmp.loginRequest({
    type: "m.login.password",
    identifier: { type: "m.id.user", user: username },
    password,
    initial_device_display_name: deviceName,
  }));
}

// Secret-storage ("recovery") key of alice, shared by her devices through this variable
// (in Element the user would type it in on the new device).
let aliceRecoveryKey = null;
const cryptoCallbacks = {
  getSecretStorageKey: async ({ keys }, secretName) => {
    log(`getSecretStorageKey(${Object.keys(keys)}) for ${secretName}`);
    return aliceRecoveryKey ? [Object.keys(keys)[0], aliceRecoveryKey.privateKey] : null;
  },
};

async function startClient(label, session) {
  const client = sdk.createClient({
    baseUrl: BASE,
    userId: session.user_id,
    deviceId: session.device_id,
    accessToken: session.access_token,
    cryptoCallbacks,
  });
  clients.push(client);
  await client.initRustCrypto({ useIndexedDB: false });
  const synced = new Promise((resolve) => {
    client.on(sdk.ClientEvent.Sync, (state, _prev, data) => {
      if (state === "PREPARED" || state === "SYNCING") resolve();
      if (state === "ERROR") log(`${label}: sync error: ${describeErr(data?.error)}`);
    });
  });
  await client.startClient({ initialSyncLimit: 20 });
  await Promise.race([synced, new Promise((_, rej) => setTimeout(() => rej(new Error(`${label}: first sync did not complete`)), WAIT_MS))]);
  log(`${label}: ${session.user_id} / ${session.device_id} synced, crypto ${client.getCrypto()?.getVersion()}`);
  return client;
}

// UIA callback for /keys/device_signing/upload: try without auth, then m.login.password.
function passwordAuth(userId, password) {
  return async (makeRequest) => {
    try {
      await makeRequest(null);
    } catch (e) {
      if (e.httpStatus !== 401 || !e.data?.session && !e.data?.flows) throw e;
      log(`UIA requested for device_signing/upload (flows ${JSON.stringify(e.data.flows)})`);
      await makeRequest({
        type: "m.login.password",
        identifier: { type: "m.id.user", user: userId },
        password,
        session: e.data.session,
      });
    }
  };
}

// Wait until `client` holds event `eventId` in `roomId`, decrypted to an m.room.message.
async function waitDecrypted(client, label, roomId, eventId) {
  const ev = await waitFor(`${label} to receive event ${eventId}`, () => client.getRoom(roomId)?.findEventById(eventId));
  let lastReason;
  return await waitFor(`${label} to decrypt event ${eventId}`, async () => {
    if (ev.isBeingDecrypted()) await ev.getDecryptionPromise();
    if (ev.isDecryptionFailure()) {
      if (ev.decryptionFailureReason !== lastReason) {
        lastReason = ev.decryptionFailureReason;
        log(`${label}: cannot decrypt yet (${lastReason}): ${ev.getContent().body}`);
      }
      return null;
    }
    return ev.getType() === "m.room.message" && ev.isEncrypted() ? ev.getContent().body : null;
  });
}

// ---- the scenario ---------------------------------------------------------------

async function main() {
  const suffix = Math.random().toString(36).slice(2, 8);
  const alicePw = `alice-pw-${suffix}`;
  const bobPw = `bob-pw-${suffix}`;

  setStep("1. register alice and bob, start clients with Rust crypto");
  const aliceSession = await register(`alice_${suffix}`, alicePw);
  const bobSession = await register(`bob_${suffix}`, bobPw);
  for (const s of [aliceSession, bobSession]) {
    if (!s.access_token || !s.device_id) throw new Error(`register response lacks access_token/device_id: ${JSON.stringify(s)}`);
  }
  const alice = await startClient("alice", aliceSession);
  const bob = await startClient("bob", bobSession);
  const aliceId = aliceSession.user_id, bobId = bobSession.user_id;

  setStep("2. alice bootstraps cross-signing, secret storage and key backup");
  const aliceCrypto = alice.getCrypto();
  await aliceCrypto.bootstrapCrossSigning({ authUploadDeviceSigningKeys: passwordAuth(aliceId, alicePw) });
  await waitFor("alice to be cross-signing ready", () => aliceCrypto.isCrossSigningReady());
  await aliceCrypto.bootstrapSecretStorage({
    setupNewSecretStorage: true,
    setupNewKeyBackup: true,
    createSecretStorageKey: async () => (aliceRecoveryKey = await aliceCrypto.createRecoveryKeyFromPassphrase()),
  });
  const backupVersion = await waitFor("alice's key backup to be active", () => aliceCrypto.getActiveSessionBackupVersion());
  log(`alice: cross-signing ready, 4S key ${await alice.secretStorage.getDefaultKeyId()}, backup version ${backupVersion}`);

  setStep("3. alice creates an encrypted room and invites bob; bob joins");
  const { room_id: roomId } = await alice.createRoom({
    name: `e2ee ${suffix}`,
    preset: "private_chat",
    invite: [bobId],
    initial_state: [{ type: "m.room.encryption", state_key: "", content: { algorithm: "m.megolm.v1.aes-sha2" } }],
  });
  log(`room ${roomId}`);
  await waitFor("alice's crypto to know the room is encrypted (m.room.encryption via /sync)", () => aliceCrypto.isEncryptionEnabledInRoom(roomId));
  await waitFor("bob to get the invite over /sync", () => bob.getRoom(roomId)?.getMyMembership() === "invite");
  await bob.joinRoom(roomId);
  await waitFor("alice to see bob joined", () => alice.getRoom(roomId)?.getMember(bobId)?.membership === "join");
  await waitFor("bob's crypto to know the room is encrypted (m.room.encryption via /sync)", () => bob.getCrypto().isEncryptionEnabledInRoom(roomId));

  setStep("4. alice and bob exchange encrypted messages");
  const msg1 = "hello bob (encrypted)";
  const msg2 = "hello alice (encrypted)";
  const { event_id: ev1 } = await alice.sendMessage(roomId, { msgtype: "m.text", body: msg1 });
  log(`alice sent ${ev1}`);
  results.bob_decrypted = await waitDecrypted(bob, "bob", roomId, ev1);
  log(`bob decrypted: ${results.bob_decrypted}`);
  const { event_id: ev2 } = await bob.sendMessage(roomId, { msgtype: "m.text", body: msg2 });
  log(`bob sent ${ev2}`);
  results.alice_decrypted = await waitDecrypted(alice, "alice", roomId, ev2);
  log(`alice decrypted: ${results.alice_decrypted}`);

  // What did the server store? Fetch the raw timeline, bypassing the SDK.
  const res = await fetch(`${BASE}/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/messages?dir=b&limit=100`, {
    headers: { Authorization: `Bearer ${aliceSession.access_token}` },
  });
  const raw = await res.text();
  if (!res.ok) throw new Error(`raw /messages failed: HTTP ${res.status} ${raw}`);
  const chunk = JSON.parse(raw).chunk || [];
  const byId = Object.fromEntries(chunk.map((e) => [e.event_id, e]));
  results.server_event_types = [ev1, ev2].map((id) => byId[id]?.type ?? "missing");
  results.server_saw_plaintext = raw.includes("hello bob") || raw.includes("hello alice") ||
    chunk.some((e) => e.type === "m.room.message");
  log(`server stored types ${JSON.stringify(results.server_event_types)}, plaintext seen: ${results.server_saw_plaintext}`);

  setStep("5. alice logs in a second device and restores history from key backup");
  const alice2Session = await login(aliceId, alicePw, "alice device 2");
  const alice2 = await startClient("alice2", alice2Session);
  const alice2Crypto = alice2.getCrypto();
  // As Element's "verify with recovery key": fetch the backup key out of secret storage.
  await alice2Crypto.loadSessionBackupPrivateKeyFromSecretStorage();
  await alice2Crypto.checkKeyBackupAndEnable();
  const room2 = await waitFor("alice2 to see the room", () => alice2.getRoom(roomId));
  await waitFor(`alice2 to load event ${ev1} from history`, async () => {
    if (!room2.findEventById(ev1)) await alice2.scrollback(room2, 30);
    return !!room2.findEventById(ev1);
  });
  // Device 1 uploads room keys to the backup in the background: restore until ours is there.
  const old = room2.findEventById(ev1);
  results.second_device_decrypted = await waitFor(`alice2 to decrypt ${ev1} with keys from the backup`, async () => {
    if (old.isBeingDecrypted()) await old.getDecryptionPromise();
    if (!old.isDecryptionFailure() && old.getType() === "m.room.message") return old.getContent().body;
    const r = await alice2Crypto.restoreKeyBackup();
    log(`alice2: restoreKeyBackup -> total ${r.total}, imported ${r.imported}`);
    results.backup_keys_total = r.total;
    await alice2.decryptEventIfNeeded(old, { isRetry: true });
    return old.isDecryptionFailure() ? null : old.getContent().body;
  }, WAIT_MS, 1000);
  log(`alice2 decrypted from history: ${results.second_device_decrypted}`);
  // Element then cross-signs the new device with the keys from secret storage (reported only).
  try {
    await alice2Crypto.bootstrapCrossSigning({ authUploadDeviceSigningKeys: passwordAuth(aliceId, alicePw) });
    results.alice_device2_cross_signed = await waitFor("alice2's device to be cross-signed", async () =>
      (await alice2Crypto.getDeviceVerificationStatus(aliceId, alice2Session.device_id))?.crossSigningVerified, 5000);
  } catch (e) {
    log(`alice2: cross-signing the new device from secret storage failed: ${describeErr(e)}`);
    results.alice_device2_cross_signed = false;
  }

  setStep("6. bob checks alice's cross-signing");
  const bobCrypto = bob.getCrypto();
  const status = await waitFor(`bob to see ${aliceSession.device_id} signed by alice`, async () => {
    await bobCrypto.getUserDeviceInfo([aliceId], true);
    const s = await bobCrypto.getDeviceVerificationStatus(aliceId, aliceSession.device_id);
    return s?.signedByOwner ? s : null;
  });
  results.alice_device_signed_by_owner = status.signedByOwner;
  results.bob_sees_alice_cross_signing_keys = await bobCrypto.userHasCrossSigningKeys(aliceId);
  const enc = await bobCrypto.getEncryptionInfoForEvent(bob.getRoom(roomId).findEventById(ev1));
  results.bob_event_shield = enc ? ["NONE", "GREY", "RED"][enc.shieldColour] ?? enc.shieldColour : null;

  setStep("7. checks");
  const problems = [];
  if (results.bob_decrypted !== msg1) problems.push(`bob decrypted ${JSON.stringify(results.bob_decrypted)}`);
  if (results.alice_decrypted !== msg2) problems.push(`alice decrypted ${JSON.stringify(results.alice_decrypted)}`);
  if (results.second_device_decrypted !== msg1) problems.push(`second device decrypted ${JSON.stringify(results.second_device_decrypted)}`);
  if (results.server_saw_plaintext) problems.push("the server's /messages contained plaintext");
  if (results.server_event_types.some((t) => t !== "m.room.encrypted")) problems.push(`server event types ${results.server_event_types}`);
  if (!results.alice_device_signed_by_owner) problems.push("alice's device is not signed by her cross-signing key");
  if (problems.length) throw new Error(problems.join("; "));
}

try {
  await main();
  setStep("done");
  for (const c of clients) c.stopClient();
  writeResult(results);
  process.exit(0);
} catch (e) {
  fail(describeErr(e));
}
