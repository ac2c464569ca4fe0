// Minimal Hydrogen web client page for Conclave's end-to-end check.
//
// Reads homeserver, user, password and room ID from the query string
// (?hs=…&user=…&password=…&room=…[&e2ee=0]); without them it shows a login form that
// fills in exactly those parameters. It then logs in through Hydrogen's
// `Client` (password login), waits for the first sync, opens the room and
// renders it with Hydrogen's own `RoomViewModel` + `RoomView` (header,
// timeline, composer), so the room's messages end up in the DOM just as in
// the Hydrogen app.
//
// Progress is shown in #status (attribute data-status) and mirrored in
// `window.__conclaveE2E`, which tests/web/drive.mjs reads.
import {
  Platform,
  Client,
  LoadStatus,
  createNavigation,
  createRouter,
  RoomViewModel,
  RoomView,
  viewClassForTile,
  FeatureSet,
} from "hydrogen-view-sdk";
import downloadSandboxPath from "hydrogen-view-sdk/download-sandbox.html?url";
import workerPath from "hydrogen-view-sdk/main.js?url";
import olmWasmPath from "@matrix-org/olm/olm.wasm?url";
import olmJsPath from "@matrix-org/olm/olm.js?url";
import olmLegacyJsPath from "@matrix-org/olm/olm_legacy.js?url";
import "hydrogen-view-sdk/assets/theme-element-light.css";

const query = new URLSearchParams(location.search);

// By default Hydrogen runs as shipped: with olm, so at login it creates an
// E2EE device identity and uploads its keys (POST /keys/upload), and a failure
// there fails the session load. `?e2ee=0` leaves olm out, which is Hydrogen's
// own no-encryption mode (no key upload, encrypted rooms unreadable).
const e2ee = query.get("e2ee") !== "0";

const assetPaths = {
  downloadSandbox: downloadSandboxPath,
  worker: workerPath,
  serviceWorker: "sw.js",
};
if (e2ee) {
  assetPaths.olm = { wasm: olmWasmPath, legacyBundle: olmLegacyJsPath, wasmBundle: olmJsPath };
}

const statusEl = document.getElementById("status");
const state = (window.__conclaveE2E = { status: "idle", detail: "", loadStatus: null, userId: null, e2ee });

function setStatus(status, detail) {
  state.status = status;
  state.detail = detail;
  statusEl.dataset.status = status;
  statusEl.textContent = `[${status}] ${detail}`;
}

function fail(detail) {
  setStatus("error", detail);
  console.error("conclave-e2e: " + detail);
}

window.addEventListener("error", (e) => console.error("window error:", e.message));
window.addEventListener("unhandledrejection", (e) =>
  console.error("unhandled rejection:", e.reason && (e.reason.stack || e.reason)),
);

function loginParams() {
  const q = query;
  const p = { hs: q.get("hs"), user: q.get("user"), password: q.get("password"), room: q.get("room") };
  if (p.hs && p.user && p.password && p.room) {
    return p;
  }
  // No (complete) parameters: show the form. Submitting it (method GET)
  // reloads this page with the parameters in the query string.
  const form = document.getElementById("login");
  for (const [k, v] of Object.entries(p)) {
    if (v) form.elements[k].value = v;
  }
  form.hidden = false;
  setStatus("idle", "Enter a homeserver, user, password and room ID.");
  return null;
}

async function waitForRoom(session, roomId, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const room = session.rooms.get(roomId);
    if (room) return room;
    if (Date.now() > deadline) return null;
    await new Promise((r) => setTimeout(r, 250));
  }
}

async function main() {
  const params = loginParams();
  if (!params) return;

  const app = document.getElementById("app");
  setStatus("starting", "Initialising Hydrogen…");
  const config = {};
  const platform = new Platform({ container: app, assetPaths, config, options: { development: false } });
  const navigation = createNavigation();
  platform.setNavigation(navigation);
  await platform.init();
  const urlRouter = createRouter({ navigation, history: platform.history });
  urlRouter.attach();
  const features = await FeatureSet.load(platform.settingsStorage);
  const client = new Client(platform, features);

  client.loadStatus.subscribe((s) => {
    state.loadStatus = s;
    setStatus("loading", `Hydrogen load status: ${s}`);
  });

  setStatus("login", `Querying login flows of ${params.hs}…`);
  let loginOptions;
  try {
    loginOptions = await client.queryLogin(params.hs).result;
  } catch (err) {
    return fail(`queryLogin(${params.hs}) failed: ${err && (err.stack || err.message || err)}`);
  }
  if (!loginOptions.password) {
    return fail(`homeserver ${loginOptions.homeserver} offers no m.login.password flow`);
  }
  setStatus("login", `Logging in as ${params.user} on ${loginOptions.homeserver} (E2EE ${e2ee ? "on" : "off"})…`);
  client.startWithLogin(loginOptions.password(params.user, params.password));

  await client.loadStatus.waitFor(
    (s) => s === LoadStatus.Ready || s === LoadStatus.Error || s === LoadStatus.LoginFailed,
  ).promise;

  if (client.loginFailure) {
    return fail(`login failed: ${client.loginFailure} ${client.loadError ? client.loadError.message : ""}`);
  }
  if (client.loadError) {
    const e = client.loadError;
    return fail(`load failed: ${e.name}: ${e.message}${e.errcode ? " (" + e.errcode + ")" : ""}`);
  }

  const { session } = client;
  state.userId = session.userId;
  setStatus("synced", `Logged in as ${session.userId}; first sync done. Opening ${params.room}…`);
  const room = await waitForRoom(session, params.room, 20000);
  if (!room) {
    const known = [...session.rooms.keys()].join(", ") || "none";
    return fail(`room ${params.room} is not among ${session.userId}'s joined rooms (known: ${known})`);
  }

  const vm = new RoomViewModel({
    room,
    session,
    ownUserId: session.userId,
    platform,
    urlRouter,
    navigation,
    features,
  });
  await vm.load();
  const view = new RoomView(vm, viewClassForTile);
  app.appendChild(view.mount());
  setStatus(
    "ready",
    `Logged in as ${session.userId}; showing ${room.name || room.id} (${room.id}); E2EE ${e2ee ? "on" : "off"}.`,
  );
}

main().catch((err) => fail(`unexpected error: ${err && (err.stack || err.message || err)}`));
