//! sdk-check: drives a homeserver with matrix-rust-sdk 0.18 the way Element X does
//! (SyncService = RoomListService + EncryptionSyncService over simplified sliding
//! sync / MSC4186), and checks invites, room-list ordering, unread counts and E2EE.
//!
//! Usage: sdk-check <homeserver_base_url>      (e.g. http://127.0.0.1:8008)
//!        sdk-check <homeserver_base_url> invites <iterations> [computed-names]
//!                                              (the invite stress; see COMPUTE_NAMES)
//! Env:   SDK_CHECK_WAIT_SECS (per-wait timeout, default 20), RUST_LOG (default "error").
//! Prints one JSON line on stdout; exit 0 = pass, 1 = fail (reason on stderr).

use std::{
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context, Result, bail};
use futures_util::{Stream, StreamExt};
use matrix_sdk::{
    Client, Room, RoomState,
    ruma::{
        OwnedEventId, OwnedRoomId,
        api::client::room::create_room::v3::{Request as CreateRoomRequest, RoomPreset},
        events::{
            InitialStateEvent,
            room::{encryption::RoomEncryptionEventContent, message::RoomMessageEventContent},
        },
    },
    sliding_sync::VersionBuilder,
};
use matrix_sdk_ui::{
    eyeball_im::{Vector, VectorDiff},
    room_list_service::{RoomListItem, RoomListLoadingState, filters::new_filter_non_left},
    sync_service::{State as SyncState, SyncService},
};
use serde_json::{Value, json};

const PASSWORD: &str = "sdk-check-password-1";
const OVERALL: Duration = Duration::from_secs(120);

static T0: OnceLock<Instant> = OnceLock::new();
macro_rules! log {
    ($($a:tt)*) => {
        eprintln!("[{:7.3}s] {}", T0.get_or_init(Instant::now).elapsed().as_secs_f64(), format!($($a)*))
    };
}

fn wait_limit() -> Duration {
    let secs = std::env::var("SDK_CHECK_WAIT_SECS").ok().and_then(|s| s.parse().ok());
    Duration::from_secs(secs.unwrap_or(20))
}

#[tokio::main]
async fn main() {
    T0.get_or_init(Instant::now);
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();

    let args: Vec<String> = std::env::args().skip(1).collect();
    let (hs, scenario) = match args.as_slice() {
        [hs] => (hs.trim_end_matches('/').to_owned(), None),
        [hs, mode, n, rest @ ..] if mode == "invites" => match (n.parse::<usize>(), rest) {
            (Ok(n), []) => (hs.trim_end_matches('/').to_owned(), Some(n)),
            (Ok(n), [names]) if names == "computed-names" => {
                COMPUTE_NAMES.store(true, Ordering::Relaxed);
                (hs.trim_end_matches('/').to_owned(), Some(n))
            }
            _ => usage(),
        },
        _ => usage(),
    };
    let limit = if scenario.is_some() { OVERALL * 5 } else { OVERALL };
    let outcome = match scenario {
        None => tokio::time::timeout(limit, run(hs)).await,
        Some(iterations) => tokio::time::timeout(limit, invite_stress(hs, iterations)).await,
    };
    match outcome {
        Ok(Ok(summary)) => {
            println!("{summary}");
            let errors = summary["sync_errors"].as_array().map_or(0, |a| a.len());
            if errors > 0 {
                eprintln!("FAIL: the sync services reported {errors} error(s), see sync_errors");
                std::process::exit(1);
            }
            log!("PASS");
            std::process::exit(0);
        }
        Ok(Err(e)) => eprintln!("FAIL: {e:#}"),
        Err(_) => {
            eprintln!("FAIL: overall timeout of {}s exceeded (see the last step above)", limit.as_secs())
        }
    }
    std::process::exit(1);
}

/// Read room names with `Room::display_name()`, which computes and caches a name when none is
/// cached, instead of the cached name Element X shows. matrix-sdk 0.18 writes that cache
/// without synchronising with its sync processing: a name computed from a new invite before
/// its stripped state is applied can overwrite the right one, for good. This mode shows it.
static COMPUTE_NAMES: AtomicBool = AtomicBool::new(false);

fn usage() -> ! {
    eprintln!("usage: sdk-check <homeserver_base_url> [invites <iterations> [computed-names]]");
    std::process::exit(2);
}

/// Rooms alice creates per iteration of the invite stress: half back to back, half at once.
const STRESS_ROOMS: usize = 4;

/// The invite stress: while bob's room list runs, alice creates rooms inviting him, some back
/// to back and some concurrently, `iterations` times over; every invite must show in bob's
/// list under its room's name. Reports every iteration that failed (the run fails if any did).
async fn invite_stress(hs: String, iterations: usize) -> Result<Value> {
    let (_, alice, bob) = alice_and_bob(&hs).await?;
    let bob_id = bob.user_id().context("bob has no user id")?.to_owned();

    let errors: Arc<Mutex<Vec<String>>> = Arc::default();
    let bob_sync = Arc::new(SyncService::builder(bob.clone()).with_offline_mode().build().await?);
    let watcher = watch_sync("bob", bob_sync.clone(), errors.clone());
    bob_sync.start().await;
    let room_list = bob_sync.room_list_service().all_rooms().await?;
    wait_loaded(&room_list).await?;
    let (stream, controller) = room_list.entries_with_dynamic_adapters(1000);
    controller.set_filter(Box::new(new_filter_non_left()));
    let mut list = BobList { stream: Box::pin(stream), items: Vector::new() };

    let mut failures = Vec::new();
    for iteration in 0..iterations {
        let names: Vec<String> = (0..STRESS_ROOMS).map(|k| format!("Stress {iteration}.{k}")).collect();
        let (sequential, concurrent) = names.split_at(STRESS_ROOMS / 2);
        let mut ids = Vec::new();
        for name in sequential {
            ids.push(create_room(&alice, name, &bob_id, false).await?.room_id().to_owned());
        }
        let created = futures_util::future::join_all(
            concurrent.iter().map(|name| create_room(&alice, name, &bob_id, false)),
        )
        .await;
        for room in created {
            ids.push(room?.room_id().to_owned());
        }
        let expected: Vec<(OwnedRoomId, String)> = ids.into_iter().zip(names).collect();
        let outcome = list
            .wait_for(&format!("iteration {iteration}: {STRESS_ROOMS} invites under their names"), |l| {
                expected
                    .iter()
                    .all(|(id, name)| is(l, id, |e| e.state == RoomState::Invited && &e.name == name))
            })
            .await;
        if let Err(error) = outcome {
            // The whole list is in the error; the rooms of this iteration are what matter.
            let error: String = format!("{error:#}").chars().take(200).collect();
            let mut rooms = Vec::new();
            for (id, name) in &expected {
                let room = bob.get_room(id);
                rooms.push(json!({
                    "room_id": id.to_string(),
                    "expected": name,
                    "known": room.is_some(),
                    "state": room.as_ref().map(|r| format!("{:?}", r.state())),
                    "m.room.name": room.as_ref().and_then(|r| r.name()),
                    "cached_display_name": room.as_ref().and_then(|r| r.cached_display_name()).map(|n| n.to_string()),
                }));
            }
            log!("FAILED iteration {iteration}: {error}…\n{}", Value::from(rooms.clone()));
            failures.push(json!({ "iteration": iteration, "error": error, "rooms": rooms }));
        }
    }
    bob_sync.stop().await;
    watcher.abort();
    drop(controller);
    let sync_errors = errors.lock().unwrap().clone();
    if !failures.is_empty() {
        bail!("{} of {iterations} iterations failed: {}", failures.len(), Value::from(failures));
    }
    Ok(json!({ "iterations": iterations, "failures": [], "sync_errors": sync_errors }))
}

/// Registers a pusher as Element X does once logged in (`ClientProxy.setPusher`: an HTTP
/// pusher with `format: event_id_only` and the iOS default payload) and answers it as the
/// server lists it.
async fn register_pusher(client: &Client) -> Result<Value> {
    use matrix_sdk::ruma::{
        api::client::push::{PusherIds, PusherInit, PusherKind, get_pushers},
        push::{HttpPusherData, PushFormat},
        serde::JsonObject,
    };
    let mut data = HttpPusherData::new("http://127.0.0.1:9/_matrix/push/v1/notify".to_owned());
    data.format = Some(PushFormat::EventIdOnly);
    let payload =
        json!({ "aps": { "mutable-content": 1, "alert": { "loc-key": "Notification", "loc-args": [] } } });
    data.data =
        serde_json::from_value::<JsonObject>(json!({ "default_payload": payload }))?.into_iter().collect();
    let pusher = PusherInit {
        ids: PusherIds::new("sdk-check-pushkey".to_owned(), "io.element.elementx.ios".to_owned()),
        kind: PusherKind::Http(data),
        app_display_name: "Element X".to_owned(),
        device_display_name: "sdk-check".to_owned(),
        profile_tag: None,
        lang: "en".to_owned(),
    };
    client.pusher().set(pusher.into(), false).await?;
    let listed = client.send(get_pushers::v3::Request::new()).await?;
    let found = listed
        .pushers
        .iter()
        .find(|p| p.ids.pushkey == "sdk-check-pushkey")
        .context("the pusher Element X registered is not listed")?;
    log!("pusher registered and listed");
    Ok(serde_json::to_value(found)?)
}

async fn run(hs: String) -> Result<Value> {
    // Step 1: register + log in (Element X: login screen -> `matrix_auth().login_username`).
    let (http, alice, bob) = alice_and_bob(&hs).await?;
    let bob_id = bob.user_id().context("bob has no user id")?.to_owned();
    let bob_device = bob.device_id().context("bob has no device id")?.to_owned();
    log!("logged in {} and {bob_id} (device {bob_device})", alice.user_id().unwrap());
    let pusher = register_pusher(&bob).await?;

    // Step 2: both clients run a SyncService, built like Element X's ClientProxy does
    // (offline mode on; share_pos on by default). It drives two MSC4186 connections:
    // conn_id "room-list" (RoomListService) and conn_id "encryption" (to-device + e2ee).
    let errors: Arc<Mutex<Vec<String>>> = Arc::default();
    let alice_sync = Arc::new(SyncService::builder(alice.clone()).with_offline_mode().build().await?);
    let bob_sync = Arc::new(SyncService::builder(bob.clone()).with_offline_mode().build().await?);
    let watchers = [
        watch_sync("alice", alice_sync.clone(), errors.clone()),
        watch_sync("bob", bob_sync.clone(), errors.clone()),
    ];
    alice_sync.start().await;
    bob_sync.start().await;

    // Bob's room list, as Element X's RoomSummaryProvider consumes it: the "all_rooms"
    // list, through entries_with_dynamic_adapters + a non-left filter.
    let rls = bob_sync.room_list_service();
    let room_list = rls.all_rooms().await?;
    wait_loaded(&room_list).await?;
    let (stream, controller) = room_list.entries_with_dynamic_adapters(100);
    controller.set_filter(Box::new(new_filter_non_left()));
    let mut list = BobList { stream: Box::pin(stream), items: Vector::new() };

    // Step 3: alice creates Alpha and Beta and invites bob; bob sees both invites, joins.
    let alpha = create_room(&alice, "Alpha", &bob_id, false).await?;
    let beta = create_room(&alice, "Beta", &bob_id, false).await?;
    let (alpha_id, beta_id) = (alpha.room_id().to_owned(), beta.room_id().to_owned());
    log!("alice created Alpha={alpha_id} Beta={beta_id}");
    list.wait_for("invites to Alpha and Beta", |l| {
        is(l, &alpha_id, |e| e.state == RoomState::Invited && e.name == "Alpha")
            && is(l, &beta_id, |e| e.state == RoomState::Invited && e.name == "Beta")
    })
    .await?;
    // Element X: accepting an invite calls `room.join()`.
    for id in [&alpha_id, &beta_id] {
        bob.get_room(id).context("bob does not know the invited room")?.join().await?;
    }
    list.wait_for("Alpha and Beta joined", |l| {
        is(l, &alpha_id, |e| e.state == RoomState::Joined)
            && is(l, &beta_id, |e| e.state == RoomState::Joined)
    })
    .await?;

    // Step 4: a message in Alpha, then in Beta -> Beta above Alpha, both unread.
    let a1 = send_text(&alpha, "hello alpha").await?;
    tokio::time::sleep(Duration::from_millis(100)).await; // distinct origin_server_ts
    let b1 = send_text(&beta, "hello beta").await?;
    let after_beta = list
        .wait_for("Beta above Alpha with the new messages as latest events and unread > 0", |l| {
            is(l, &alpha_id, |e| e.latest.as_ref() == Some(&a1) && e.unread > 0)
                && is(l, &beta_id, |e| e.latest.as_ref() == Some(&b1) && e.unread > 0)
                && pos(l, &beta_id) < pos(l, &alpha_id)
        })
        .await?;
    let alpha4 = after_beta.iter().find(|e| e.id == alpha_id).unwrap();
    let beta4 = after_beta.iter().find(|e| e.id == beta_id).unwrap();
    if alpha4.notif == 0 {
        log!("WARN: server-side unread_notifications.notification_count for Alpha is 0");
    }

    // Step 5: another message in Alpha -> Alpha moves to the top.
    let a2 = send_text(&alpha, "alpha again").await?;
    let after_alpha = list
        .wait_for("Alpha back on top", |l| {
            is(l, &alpha_id, |e| e.latest.as_ref() == Some(&a2)) && pos(l, &alpha_id) < pos(l, &beta_id)
        })
        .await?;

    // Step 6: encrypted room. Bob joins, opens it (Element X: subscribe_to_rooms + Timeline),
    // alice sends an encrypted message, bob's timeline must show the plaintext.
    let secret = create_room(&alice, "Secret", &bob_id, true).await?;
    let secret_id = secret.room_id().to_owned();
    log!("alice created encrypted Secret={secret_id}");
    list.wait_for("invite to Secret", |l| {
        is(l, &secret_id, |e| e.state == RoomState::Invited && e.name == "Secret")
    })
    .await?;
    let bob_secret = bob.get_room(&secret_id).context("bob does not know Secret")?;
    bob_secret.join().await?;
    rls.subscribe_to_rooms(&[bob_secret.room_id()]).await;
    let timeline = matrix_sdk_ui::timeline::RoomExt::timeline(&bob_secret).await?;
    wait_device_published(&http, &hs, &alice, &bob_id.to_string(), bob_device.as_str()).await?;
    let sent = secret.send(RoomMessageEventContent::text_plain("secret hello")).await?;
    if sent.encryption_info.is_none() {
        bail!(
            "alice's SDK sent the Secret message unencrypted: it does not consider the room encrypted \
               (m.room.encryption missing from required_state / room state?)"
        );
    }
    let s1 = sent.response.event_id;
    log!("alice sent encrypted event {s1}");
    let decrypted = wait_decrypted(&timeline, &s1).await?;
    let final_list = list.snapshot().await;

    // Step 7: stop everything (Element X: app goes to background -> SyncService::stop).
    bob_sync.stop().await;
    alice_sync.stop().await;
    watchers.iter().for_each(|w| w.abort());
    drop(controller);

    let sync_errors = errors.lock().unwrap().clone();
    Ok(json!({
        "invites_seen": true,
        "order_after_beta": names(&after_beta),
        "order_after_alpha": names(&after_alpha),
        "order_final": names(&final_list),
        "unread_alpha": alpha4.unread,
        "unread_beta": beta4.unread,
        "server_notification_count_alpha": alpha4.notif,
        "decrypted": decrypted,
        "pusher": pusher,
        "sync_errors": sync_errors,
        "elapsed_s": T0.get().unwrap().elapsed().as_secs_f64(),
    }))
}

/// Registers two fresh users, alice_<suffix> and bob_<suffix>, and logs each in.
async fn alice_and_bob(hs: &str) -> Result<(reqwest::Client, Client, Client)> {
    let http = reqwest::Client::new();
    let suffix = format!(
        "{:x}",
        SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos() as u64 ^ u64::from(std::process::id())
    );
    let (alice_name, bob_name) = (format!("alice_{suffix}"), format!("bob_{suffix}"));
    register(&http, hs, &alice_name).await?;
    register(&http, hs, &bob_name).await?;
    let alice = login(hs, &alice_name).await?;
    let bob = login(hs, &bob_name).await?;
    Ok((http, alice, bob))
}

/// Registration via raw HTTP: UIA with m.login.dummy (401 + session first).
async fn register(http: &reqwest::Client, hs: &str, username: &str) -> Result<()> {
    let url = format!("{hs}/_matrix/client/v3/register");
    let mut body = json!({"username": username, "password": PASSWORD, "inhibit_login": true});
    let (status, resp) = post_json(http, &url, None, &body).await?;
    if status != 401 {
        bail!("register {username}: expected 401 with a UIA session, got {status}: {resp}");
    }
    let session = resp["session"].as_str().context("register: 401 without session")?;
    body["auth"] = json!({"type": "m.login.dummy", "session": session});
    let (status, resp) = post_json(http, &url, None, &body).await?;
    if status != 200 {
        bail!("register {username} with m.login.dummy: {status}: {resp}");
    }
    Ok(())
}

async fn post_json(
    http: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    body: &Value,
) -> Result<(u16, Value)> {
    let mut req = http.post(url).json(body);
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    let resp = req.send().await.with_context(|| format!("POST {url}"))?;
    let status = resp.status().as_u16();
    Ok((status, resp.json().await.unwrap_or(Value::Null)))
}

async fn login(hs: &str, username: &str) -> Result<Client> {
    // Element X pins the simplified sliding sync (MSC4186) version explicitly.
    let client = Client::builder()
        .homeserver_url(hs)
        .sliding_sync_version_builder(VersionBuilder::Native)
        .respect_login_well_known(false)
        .build()
        .await?;
    client.matrix_auth().login_username(username, PASSWORD).initial_device_display_name("sdk-check").await?;
    client.encryption().wait_for_e2ee_initialization_tasks().await;
    Ok(client)
}

/// Mirrors Element X reacting to SyncService state: log it, record errors, and
/// restart after a hard error (offline mode restarts by itself).
fn watch_sync(
    who: &'static str,
    svc: Arc<SyncService>,
    errors: Arc<Mutex<Vec<String>>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut states = svc.state();
        while let Some(state) = states.next().await {
            log!("{who}: SyncService state -> {state:?}");
            match state {
                SyncState::Error(err) => {
                    errors.lock().unwrap().push(format!("{who}: {err}"));
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    svc.start().await;
                }
                SyncState::Offline => {
                    errors
                        .lock()
                        .unwrap()
                        .push(format!("{who}: went offline (a sync request failed; see RUST_LOG output)"));
                }
                _ => {}
            }
        }
    })
}

async fn wait_loaded(room_list: &matrix_sdk_ui::room_list_service::RoomList) -> Result<()> {
    let started = Instant::now();
    let mut states = room_list.loading_state();
    loop {
        let left = wait_limit().saturating_sub(started.elapsed());
        match tokio::time::timeout(left, states.next()).await {
            Ok(Some(RoomListLoadingState::Loaded { maximum_number_of_rooms })) => {
                log!(
                    "bob's room list loaded (count={maximum_number_of_rooms:?}) in {:.2}s",
                    started.elapsed().as_secs_f64()
                );
                return Ok(());
            }
            Ok(Some(_)) => continue,
            Ok(None) => bail!("bob's room list loading state stream ended"),
            Err(_) => bail!(
                "bob's room list never loaded: no successful sliding sync response on conn_id=room-list"
            ),
        }
    }
}

async fn create_room(
    alice: &Client,
    name: &str,
    invitee: &matrix_sdk::ruma::UserId,
    encrypted: bool,
) -> Result<Room> {
    let mut req = CreateRoomRequest::new();
    req.name = Some(name.to_owned());
    req.invite = vec![invitee.to_owned()];
    req.preset = Some(RoomPreset::PrivateChat);
    if encrypted {
        let ev =
            InitialStateEvent::with_empty_state_key(RoomEncryptionEventContent::with_recommended_defaults());
        req.initial_state = vec![ev.to_raw_any()];
    }
    alice.create_room(req).await.with_context(|| format!("alice creating {name}"))
}

async fn send_text(room: &Room, body: &str) -> Result<OwnedEventId> {
    let res = room.send(RoomMessageEventContent::text_plain(body)).await?;
    log!("alice sent {body:?} in {} as {}", room.room_id(), res.response.event_id);
    Ok(res.response.event_id)
}

/// Alice must see bob's device via /keys/query before she can share the room key.
async fn wait_device_published(
    http: &reqwest::Client,
    hs: &str,
    alice: &Client,
    bob: &str,
    device: &str,
) -> Result<()> {
    let started = Instant::now();
    let token = alice.access_token().context("alice has no access token")?;
    let url = format!("{hs}/_matrix/client/v3/keys/query");
    loop {
        let (status, resp) = post_json(http, &url, Some(&token), &json!({"device_keys": {bob: []}})).await?;
        if resp["device_keys"][bob][device].is_object() {
            log!("bob's device keys are published ({:.2}s)", started.elapsed().as_secs_f64());
            return Ok(());
        }
        if started.elapsed() > wait_limit() {
            bail!(
                "bob's device {device} never appeared in /keys/query (last: {status} {resp}); \
                   the encryption sync should have uploaded them"
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Element X's room screen: watch the Timeline until the event is decrypted.
async fn wait_decrypted(timeline: &matrix_sdk_ui::Timeline, event_id: &OwnedEventId) -> Result<String> {
    let started = Instant::now();
    loop {
        let (mut found, mut utd) = (None, 0);
        for item in timeline.items().await.iter() {
            let Some(ev) = item.as_event() else { continue };
            if ev.content().is_unable_to_decrypt() {
                utd += 1;
            }
            if ev.event_id() == Some(&**event_id) {
                found = Some(ev.content().as_message().map(|m| m.body().to_owned()));
            }
        }
        if let Some(Some(body)) = &found {
            log!("bob decrypted {event_id}: {body:?} ({:.2}s)", started.elapsed().as_secs_f64());
            return Ok(body.clone());
        }
        if started.elapsed() > wait_limit() {
            bail!(
                "bob never decrypted {event_id}: in timeline={}, still UTD={}, UTD items={utd}. \
                   Check to-device delivery (encryption conn), /keys/claim and OTK counts in the e2ee extension",
                found.is_some(),
                matches!(found, Some(None))
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// One row of bob's room list, read live from the SDK room.
struct Entry {
    id: OwnedRoomId,
    name: String,
    state: RoomState,
    unread: u64,
    notif: u64,
    latest: Option<OwnedEventId>,
}

fn is(list: &[Entry], id: &OwnedRoomId, f: impl Fn(&Entry) -> bool) -> bool {
    list.iter().any(|e| &e.id == id && f(e))
}
fn pos(list: &[Entry], id: &OwnedRoomId) -> usize {
    list.iter().position(|e| &e.id == id).unwrap_or(usize::MAX)
}
fn names(list: &[Entry]) -> Vec<String> {
    list.iter().map(|e| e.name.clone()).collect()
}
fn describe(list: &[Entry]) -> String {
    let rows: Vec<String> = list
        .iter()
        .map(|e| {
            format!(
                "{}({:?}, unread={}, notif={}, latest={:?})",
                e.name, e.state, e.unread, e.notif, e.latest
            )
        })
        .collect();
    format!("[{}]", rows.join(", "))
}

/// Bob's sorted + filtered room list, kept up to date by applying VectorDiffs.
struct BobList<S> {
    stream: S,
    items: Vector<RoomListItem>,
}

impl<S: Stream<Item = Vec<VectorDiff<RoomListItem>>> + Unpin> BobList<S> {
    async fn snapshot(&self) -> Vec<Entry> {
        let mut out = Vec::new();
        for item in self.items.iter() {
            let room: Room = item.clone().into_inner();
            let name = if COMPUTE_NAMES.load(Ordering::Relaxed) {
                match room.display_name().await {
                    Ok(n) => n.to_string(),
                    Err(e) => format!("<{e}>"),
                }
            } else {
                // What Element X shows: the name the SDK computed while processing the sync
                // answer (matrix-sdk-ffi reads `cached_display_name`, never computes one).
                room.cached_display_name().map_or_else(|| "<no name yet>".to_owned(), |n| n.to_string())
            };
            out.push(Entry {
                id: room.room_id().to_owned(),
                name,
                state: room.state(),
                unread: room.num_unread_messages(),
                notif: room.unread_notification_counts().notification_count,
                latest: room.latest_event().event_id(),
            });
        }
        out
    }

    async fn wait_for(&mut self, what: &str, check: impl Fn(&[Entry]) -> bool) -> Result<Vec<Entry>> {
        let started = Instant::now();
        loop {
            let snap = self.snapshot().await;
            if check(&snap) {
                log!("bob's list OK: {what} ({:.2}s): {}", started.elapsed().as_secs_f64(), describe(&snap));
                return Ok(snap);
            }
            if started.elapsed() > wait_limit() {
                bail!(
                    "timed out after {:?} waiting for bob's room list: {what}; list is {}",
                    wait_limit(),
                    describe(&snap)
                );
            }
            match tokio::time::timeout(Duration::from_millis(250), self.stream.next()).await {
                Ok(Some(diffs)) => diffs.into_iter().for_each(|d| d.apply(&mut self.items)),
                Ok(None) => bail!("bob's room list stream ended"),
                Err(_) => {}
            }
        }
    }
}
