//! The admin room, driven over the client API as an administrator would: the first account is
//! invited to `#admins:<server>`, commands sent there as messages are answered by the server's
//! bot as replies, a non-administrator's commands are refused and not run, and every action
//! lands in the audit log with its secrets masked. The console (`conclave admin …`) runs the
//! same commands through the server's unix socket.

mod common;

use common::admin::*;
use common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_admin_runs_users_commands_in_the_admin_room() {
    let mut ts = TestServer::start().await;
    let admin = ts.register_first_admin("boss", "boss-password").await;
    let room = admin_room(&ts).await;

    // The first account was invited; the room cannot be encrypted by an admin.
    let sync = expect_ok(
        ts.get("/_matrix/client/v3/sync?timeout=0", admin.bearer())
            .await,
    );
    assert!(sync["rooms"]["invite"][&room].is_object(), "{sync}");
    expect_ok(
        ts.post(&room_path(&room, "/join"), admin.bearer(), &json!({}))
            .await,
    );
    let levels = expect_ok(
        ts.get(
            &room_path(&room, "/state/m.room.power_levels/"),
            admin.bearer(),
        )
        .await,
    );
    assert_eq!(levels["events"]["m.room.encryption"], 1000, "{levels}");
    let topic = expect_ok(
        ts.get(&room_path(&room, "/state/m.room.topic/"), admin.bearer())
            .await,
    );
    assert!(
        topic["topic"].as_str().unwrap().contains("!admin help"),
        "{topic}"
    );

    // help, group help, and a malformed command: clap's text, as code.
    let help = command(&ts, &admin, &room, "!admin help").await;
    assert!(
        body(&help).contains("users") && body(&help).contains("audit"),
        "{help}"
    );
    assert!(
        help["formatted_body"]
            .as_str()
            .unwrap()
            .contains("<pre><code>"),
        "{help}"
    );
    let group = command(&ts, &admin, &room, "!admin users --help").await;
    assert!(body(&group).contains("reset-password"), "{group}");
    let wrong = command(&ts, &admin, &room, "!admin users create").await;
    assert!(body(&wrong).contains("could not be read"), "{wrong}");
    assert!(body(&wrong).contains("<LOCALPART>"), "{wrong}");

    // Create an account, then log in with it.
    let created = command(
        &ts,
        &admin,
        &room,
        "!admin users create bob --password 'bob secret 1' --displayname 'Bob B'",
    )
    .await;
    assert!(
        body(&created).contains("Created `@bob:localhost`"),
        "{created}"
    );
    assert_eq!(created["msgtype"], "m.notice");
    assert_eq!(created["format"], "org.matrix.custom.html");
    let bob = ts.login("bob", "bob secret 1").await;
    let profile = expect_ok(
        ts.get("/_matrix/client/v3/profile/@bob:localhost", None)
            .await,
    );
    assert_eq!(profile["displayname"], "Bob B");

    // Without --password one is generated and shown once.
    let generated = command(&ts, &admin, &room, "!admin users create carol").await;
    let password = body(&generated)
        .split("shown once): `")
        .nth(1)
        .and_then(|rest| rest.split('`').next())
        .expect("a generated password")
        .to_owned();
    ts.login("carol", &password).await;

    // Lists and info render as tables.
    let list = command(&ts, &admin, &room, "!admin users list").await;
    assert!(
        body(&list).contains("| @bob:localhost | Bob B | no | no |"),
        "{list}"
    );
    assert!(!body(&list).contains(BOT), "the bot is not listed: {list}");
    assert!(
        list["formatted_body"].as_str().unwrap().contains("<table>"),
        "{list}"
    );
    let admins = command(&ts, &admin, &room, "!admin users list --admins").await;
    assert!(
        body(&admins).contains("@boss:localhost") && !body(&admins).contains("@bob:"),
        "{admins}"
    );
    let info = command(&ts, &admin, &room, "!admin users info bob").await;
    assert!(body(&info).contains(&bob.device_id), "{info}");

    // A password reset logs the user out unless told otherwise.
    let reset = command(
        &ts,
        &admin,
        &room,
        "!admin users reset-password @bob:localhost --password bob-2",
    )
    .await;
    assert!(body(&reset).contains("logged out everywhere"), "{reset}");
    ts.assert_token_rejected(&bob.access_token).await;
    let bob = ts.login("bob", "bob-2").await;

    // make-admin invites to this room; revoke-admin removes.
    let made = command(&ts, &admin, &room, "!admin users make-admin bob").await;
    assert!(body(&made).contains("now a server administrator"), "{made}");
    let sync = expect_ok(
        ts.get("/_matrix/client/v3/sync?timeout=0", bob.bearer())
            .await,
    );
    assert!(sync["rooms"]["invite"][&room].is_object(), "{sync}");
    let revoked = command(&ts, &admin, &room, "!admin users revoke-admin bob").await;
    assert!(body(&revoked).contains("no longer"), "{revoked}");
    let membership = expect_ok(
        ts.get(
            &room_path(&room, "/state/m.room.member/@bob:localhost"),
            admin.bearer(),
        )
        .await,
    );
    assert_eq!(membership["membership"], "leave");
    let last = command(&ts, &admin, &room, "!admin users revoke-admin boss").await;
    assert!(body(&last).contains("last server administrator"), "{last}");

    // Deactivation leaves rooms and ends every session.
    let shared = create_room(&ts, &bob, json!({ "invite": [admin.user_id] })).await;
    expect_ok(
        ts.post(&room_path(&shared, "/join"), admin.bearer(), &json!({}))
            .await,
    );
    let deactivated = command(&ts, &admin, &room, "!admin users deactivate bob").await;
    assert!(
        body(&deactivated).contains("Deactivated `@bob:localhost`"),
        "{deactivated}"
    );
    ts.assert_token_rejected(&bob.access_token).await;
    let resp = ts.login_raw("bob", "bob-2", json!({})).await;
    assert_eq!(resp.0, StatusCode::FORBIDDEN, "{}", resp.1);
    let left = expect_ok(
        ts.get(
            &room_path(&shared, "/state/m.room.member/@bob:localhost"),
            admin.bearer(),
        )
        .await,
    );
    assert_eq!(left["membership"], "leave", "{left}");
    let unknown = command(&ts, &admin, &room, "!admin users info nobody").await;
    assert!(
        body(&unknown).contains("no account `@nobody:localhost`"),
        "{unknown}"
    );

    // server status; the audit log holds each action, passwords masked.
    let status = command(&ts, &admin, &room, "!admin server status").await;
    assert!(
        body(&status).contains(env!("CARGO_PKG_VERSION")),
        "{status}"
    );
    let audit = command(&ts, &admin, &room, "!admin audit list --limit 50").await;
    let audit_body = body(&audit);
    assert!(
        audit_body.contains("users create bob --password <redacted>"),
        "{audit}"
    );
    assert!(
        !audit_body.contains("bob secret") && !audit_body.contains("bob-2"),
        "{audit}"
    );
    assert!(audit_body.contains("users deactivate bob | ok"), "{audit}");

    // After a restart the same room serves; no second room or bot appears.
    ts.restart().await;
    assert_eq!(admin_room(&ts).await, room);
    let again = command(&ts, &admin, &room, "!admin users list").await;
    assert!(body(&again).contains("@carol:localhost"), "{again}");
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_admin_is_refused_and_nothing_runs() {
    let ts = TestServer::start_open().await;
    let admin = ts.register_open("boss", "boss-password").await;
    let eve = ts.register_open("eve", "eve-password").await;
    let room = admin_room(&ts).await;
    expect_ok(
        ts.post(&room_path(&room, "/join"), admin.bearer(), &json!({}))
            .await,
    );
    // An admin lets eve in (say, by mistake): her commands still do nothing.
    expect_ok(
        ts.post(
            &room_path(&room, "/invite"),
            admin.bearer(),
            &json!({ "user_id": eve.user_id }),
        )
        .await,
    );
    expect_ok(
        ts.post(&room_path(&room, "/join"), eve.bearer(), &json!({}))
            .await,
    );
    let refused = command(
        &ts,
        &eve,
        &room,
        "!admin users create mallory --password m-1",
    )
    .await;
    assert!(
        body(&refused).contains("only server administrators"),
        "{refused}"
    );
    let available = ts.username_available("mallory").await;
    assert_eq!(expect_ok(available)["available"], true);
    let revoke = command(&ts, &eve, &room, "!admin users make-admin eve").await;
    assert!(
        body(&revoke).contains("only server administrators"),
        "{revoke}"
    );
    let list = command(&ts, &admin, &room, "!admin users list --admins").await;
    assert!(!body(&list).contains("@eve:"), "{list}");
    // The refusals are on record.
    let audit = command(
        &ts,
        &admin,
        &room,
        "!admin audit list --actor @eve:localhost",
    )
    .await;
    assert!(body(&audit).contains("refused"), "{audit}");
    assert!(body(&audit).contains("The last 2 action(s)"), "{audit}");
    // Ordinary chat in the room is not a command.
    send_text_id(&ts, &admin, &room, "chat", "hello admins").await;
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_runs_the_same_commands_through_the_socket() {
    use std::os::unix::fs::PermissionsExt;
    let ts = TestServer::start().await;
    let socket = ts.config().database_path.join("admin.sock");
    let mode = std::fs::metadata(&socket)
        .expect("the socket exists")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "only the server's OS user may connect");

    // The first administrator, made from the shell: no token, no client needed.
    let (code, out, err) = console(
        &socket,
        &[
            "users",
            "create",
            "root-admin",
            "--password",
            "console pw",
            "--admin",
        ],
    )
    .await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("Created @root-admin:localhost as a server administrator"),
        "{out}"
    );
    let admin = ts.login("root-admin", "console pw").await;
    let sync = expect_ok(
        ts.get("/_matrix/client/v3/sync?timeout=0", admin.bearer())
            .await,
    );
    assert!(
        sync["rooms"]["invite"][&admin_room(&ts).await].is_object(),
        "{sync}"
    );

    // Tables come as aligned columns.
    let (code, out, _) = console(&socket, &["users", "list"]).await;
    assert_eq!(code, 0);
    assert!(
        out.lines()
            .any(|l| l.starts_with("user ") && l.contains("display name")),
        "{out}"
    );
    assert!(out.contains("@root-admin:localhost"), "{out}");

    // Failures exit non-zero with the reason on stderr.
    let (code, out, err) = console(&socket, &["users", "info", "nobody"]).await;
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("no account @nobody:localhost"), "{err}");
    let (code, _, err) = console(&socket, &["users", "frobnicate"]).await;
    assert_eq!(code, 1);
    assert!(err.contains("unrecognized subcommand"), "{err}");
    let (code, out, _) = console(&socket, &["help"]).await;
    assert_eq!(code, 0);
    assert!(out.contains("Usage: !admin"), "{out}");

    // The audit log names the console and the caller's uid.
    let (_, out, _) = console(&socket, &["audit", "list"]).await;
    assert!(out.contains("console (uid "), "{out}");
    assert!(
        out.contains("users create root-admin --password <redacted> --admin"),
        "{out}"
    );

    // Once the server stops, the socket is gone and the command says so.
    ts.shutdown().await;
    assert!(!socket.exists(), "the socket was removed");
    let (code, _, err) = console(&socket, &["users", "list"]).await;
    assert_eq!(code, 2);
    assert!(err.contains("cannot reach the admin console"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_tokens_let_staff_register_while_registration_is_closed() {
    let ts = TestServer::start().await;
    let socket = ts.config().database_path.join("admin.sock");
    let bootstrap = ts.bootstrap_token().expect("a first-start token");
    // The first administrator made from the console retires the first-start token: it must
    // not open registration afterwards.
    let (code, out, err) = console(
        &socket,
        &["users", "create", "it", "--password", "it-pw", "--admin"],
    )
    .await;
    assert_eq!(code, 0, "{out}{err}");
    let resp = ts
        .register(
            json!({ "username": "sneaky", "password": "sneaky-pw" }),
            registration_token_auth(&bootstrap),
        )
        .await;
    assert_eq!(resp.0, StatusCode::FORBIDDEN, "{}", resp.1);

    let (code, out, _) = console(
        &socket,
        &[
            "tokens",
            "issue",
            "--uses",
            "1",
            "--token",
            "staff-2027",
            "--expires",
            "7d",
        ],
    )
    .await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("staff-2027") && out.contains("creates 1 account(s), until 20"),
        "{out}"
    );
    let (code, _, _) = console(
        &socket,
        &[
            "tokens",
            "issue",
            "--token",
            "expired",
            "--expires",
            "2001-01-01",
        ],
    )
    .await;
    assert_eq!(code, 0);
    let (code, _, err) = console(&socket, &["tokens", "issue", "--expires", "soon"]).await;
    assert_eq!(code, 1);
    assert!(err.contains("neither a date"), "{err}");

    // Closed registration offers the token stage while a token is usable.
    let flows = ts
        .post(REGISTER, None, &json!({ "username": "dora" }))
        .await;
    assert_eq!(flows.0, StatusCode::UNAUTHORIZED, "{}", flows.1);
    assert!(
        has_flow(&flows.1, &["m.login.registration_token"]),
        "{}",
        flows.1
    );
    ts.register_with_token("dora", "dora-pw", "staff-2027")
        .await;
    let again = ts
        .register(
            json!({ "username": "eric", "password": "eric-pw" }),
            registration_token_auth("staff-2027"),
        )
        .await;
    assert_eq!(again.0, StatusCode::FORBIDDEN, "one use only: {}", again.1);
    let expired = ts
        .register(
            json!({ "username": "eric", "password": "eric-pw" }),
            registration_token_auth("expired"),
        )
        .await;
    assert_eq!(expired.0, StatusCode::FORBIDDEN, "{}", expired.1);

    let (_, list, _) = console(&socket, &["tokens", "list"]).await;
    let row = |token: &str| {
        list.lines()
            .find(|line| line.starts_with(token))
            .unwrap_or_else(|| panic!("{token} not listed: {list}"))
            .split_whitespace()
            .collect::<Vec<_>>()
    };
    assert_eq!(row("staff-2027")[1..3], ["1", "1"], "{list}");
    assert_eq!(row("staff-2027").last(), Some(&"no"), "{list}");
    assert_eq!(row("expired").last(), Some(&"no"), "{list}");
    let (code, out, _) = console(&socket, &["tokens", "revoke", "expired"]).await;
    assert_eq!(code, 0, "{out}");
    let (code, _, err) = console(&socket, &["tokens", "revoke", "expired"]).await;
    assert_eq!(code, 1);
    assert!(err.contains("no registration token"), "{err}");
    // With no usable token left, closed registration is closed.
    let flows = ts.post(REGISTER, None, &json!({ "username": "fay" })).await;
    assert_eq!(flows.0, StatusCode::FORBIDDEN, "{}", flows.1);
    // The audit log hides chosen tokens like passwords.
    let (_, audit, _) = console(&socket, &["audit", "list"]).await;
    assert!(
        audit.contains("tokens issue --uses 1 --token <redacted>"),
        "{audit}"
    );
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_reactivate_and_force_membership() {
    let ts = TestServer::start_open().await;
    let socket = ts.config().database_path.join("admin.sock");
    let admin = ts.register_open("it", "it-password").await;
    let gus = ts.register_open("gus", "gus-password").await;
    let run = |words: &'static [&'static str]| console(&socket, words);

    // Locked: every request but logout is refused with M_USER_LOCKED (soft logout), and a
    // login with the right password is refused too.
    let (code, out, err) = run(&["users", "lock", "gus"]).await;
    assert_eq!(code, 0, "{out}{err}");
    let resp = ts.whoami(&gus.access_token).await;
    assert_errcode(&resp, StatusCode::UNAUTHORIZED, "M_USER_LOCKED");
    assert_eq!(resp.1["soft_logout"], true);
    let resp = ts.login_raw("gus", "gus-password", json!({})).await;
    assert_errcode(&resp, StatusCode::UNAUTHORIZED, "M_USER_LOCKED");
    let resp = ts.login_raw("gus", "wrong", json!({})).await;
    assert_errcode(&resp, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    let (_, info, _) = run(&["users", "info", "gus"]).await;
    assert!(
        info.lines()
            .any(|l| l.starts_with("locked") && l.ends_with("yes")),
        "{info}"
    );
    let (code, _, _) = run(&["users", "unlock", "gus"]).await;
    assert_eq!(code, 0);
    ts.assert_token_valid(&gus.access_token).await;
    // A lock survives a restart; logging out stays possible.
    let (code, _, _) = run(&["users", "lock", "gus"]).await;
    assert_eq!(code, 0);
    let mut ts = ts;
    ts.restart().await;
    let resp = ts.whoami(&gus.access_token).await;
    assert_errcode(&resp, StatusCode::UNAUTHORIZED, "M_USER_LOCKED");
    expect_ok(
        ts.post("/_matrix/client/v3/logout", gus.bearer(), &json!({}))
            .await,
    );
    ts.assert_token_rejected(&gus.access_token).await;
    let (code, _, _) = console(&socket, &["users", "unlock", "gus"]).await;
    assert_eq!(code, 0);

    // force-join into an invite-only room: a member who may invite lets gus in.
    let room = create_room(
        &ts,
        &admin,
        json!({ "preset": "private_chat", "room_alias_name": "ops" }),
    )
    .await;
    let (code, out, err) =
        console(&socket, &["users", "force-join", "gus", "#ops:localhost"]).await;
    assert_eq!(code, 0, "{out}{err}");
    let members = expect_ok(
        ts.get(&room_path(&room, "/joined_members"), admin.bearer())
            .await,
    );
    assert!(members["joined"]["@gus:localhost"].is_object(), "{members}");
    let (code, _, _) = console(&socket, &["users", "force-leave", "gus", &room]).await;
    assert_eq!(code, 0);
    let members = expect_ok(
        ts.get(&room_path(&room, "/joined_members"), admin.bearer())
            .await,
    );
    assert!(members["joined"]["@gus:localhost"].is_null(), "{members}");
    let (code, _, err) = console(
        &socket,
        &["users", "force-join", "gus", "#nowhere:localhost"],
    )
    .await;
    assert_eq!(code, 1);
    assert!(err.contains("no room"), "{err}");

    // Deactivate, then reactivate with a new password.
    let (code, _, _) = console(&socket, &["users", "deactivate", "gus"]).await;
    assert_eq!(code, 0);
    let (code, out, err) = console(
        &socket,
        &["users", "reactivate", "gus", "--password", "gus-again"],
    )
    .await;
    assert_eq!(code, 0, "{out}{err}");
    ts.login("gus", "gus-again").await;
    let (code, _, err) = console(&socket, &["users", "reactivate", "gus", "--password", "x"]).await;
    assert_eq!(code, 1);
    assert!(err.contains("not deactivated"), "{err}");
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_are_listed_inspected_aliased_and_published() {
    let ts = TestServer::start_open().await;
    let socket = ts.config().database_path.join("admin.sock");
    let alice = ts.register_open("alice", "alice-password").await;
    let bob = ts.register_open("bob", "bob-password").await;
    let busy = create_room(
        &ts,
        &alice,
        json!({ "name": "Busy", "preset": "public_chat", "topic": "lots" }),
    )
    .await;
    expect_ok(
        ts.post(&room_path(&busy, "/join"), bob.bearer(), &json!({}))
            .await,
    );
    let quiet = create_room(
        &ts,
        &bob,
        json!({ "name": "Quiet", "invite": [alice.user_id] }),
    )
    .await;
    send_text_id(&ts, &alice, &busy, "t1", "latest activity").await;

    let (code, out, err) = console(&socket, &["rooms", "list"]).await;
    assert_eq!(code, 0, "{out}{err}");
    let order: Vec<&str> = out
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| w.starts_with('!'))
        .collect();
    assert_eq!(order[0], busy, "most recent activity first: {out}");
    assert!(order.contains(&quiet.as_str()), "{out}");
    let (_, by_name, _) = console(
        &socket,
        &["rooms", "list", "--sort", "name", "--limit", "100"],
    )
    .await;
    let busy_at = by_name.find("Busy").unwrap();
    let quiet_at = by_name.find("Quiet").unwrap();
    assert!(busy_at < quiet_at, "{by_name}");

    let (_, info, _) = console(&socket, &["rooms", "info", &busy]).await;
    assert!(
        info.contains("creator") && info.contains("@alice:localhost"),
        "{info}"
    );
    assert!(info.contains("2 joined, 0 invited"), "{info}");
    let (_, members, _) = console(&socket, &["rooms", "members", &quiet]).await;
    assert!(
        members.contains("@alice:localhost") && members.contains("invite"),
        "{members}"
    );

    // Aliases and the directory.
    let (code, out, err) = console(
        &socket,
        &["rooms", "alias", "set", "#busy:localhost", &busy],
    )
    .await;
    assert_eq!(code, 0, "{out}{err}");
    let resolved = expect_ok(
        ts.get(
            &format!(
                "/_matrix/client/v3/directory/room/{}",
                enc("#busy:localhost")
            ),
            None,
        )
        .await,
    );
    assert_eq!(resolved["room_id"], busy.as_str());
    let (code, _, _) = console(&socket, &["rooms", "publish", "#busy:localhost"]).await;
    assert_eq!(code, 0);
    let directory = expect_ok(ts.get("/_matrix/client/v3/publicRooms", None).await);
    assert!(directory.to_string().contains(&busy), "{directory}");
    let (code, _, _) = console(&socket, &["rooms", "unpublish", &busy]).await;
    assert_eq!(code, 0);
    let directory = expect_ok(ts.get("/_matrix/client/v3/publicRooms", None).await);
    assert!(!directory.to_string().contains(&busy), "{directory}");
    let (code, _, _) = console(&socket, &["rooms", "alias", "remove", "#busy:localhost"]).await;
    assert_eq!(code, 0);
    let gone = ts
        .get(
            &format!(
                "/_matrix/client/v3/directory/room/{}",
                enc("#busy:localhost")
            ),
            None,
        )
        .await;
    assert_errcode(&gone, StatusCode::NOT_FOUND, "M_NOT_FOUND");
    let (code, _, err) = console(&socket, &["rooms", "alias", "set", "#x:elsewhere", &busy]).await;
    assert_eq!(code, 1);
    assert!(err.contains("another server"), "{err}");
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_while_running_restores_users_rooms_and_media() {
    let ts = TestServer::start_with(|cfg| {
        cfg.allow_registration = true;
        cfg.registration_token = Some("secret-token".into());
    })
    .await;
    let socket = ts.config().database_path.join("admin.sock");
    let alice = ts
        .register_with_token("alice", "alice-password", "secret-token")
        .await;
    let room = create_room(&ts, &alice, json!({ "name": "Kept" })).await;
    let event = send_text_id(&ts, &alice, &room, "t1", "before the backup").await;
    let upload = expect_ok(
        ts.request_raw(
            reqwest::Method::POST,
            "/_matrix/media/v3/upload?filename=a.txt",
            alice.bearer(),
            "text/plain",
            "media bytes",
        )
        .await,
    );
    let mxc = upload["content_uri"].as_str().unwrap().to_owned();

    // config, clear-caches, then the backup.
    let (code, out, _) = console(&socket, &["server", "config"]).await;
    assert_eq!(code, 0);
    assert!(
        out.contains("registration_token") && !out.contains("secret-token"),
        "{out}"
    );
    let (code, out, _) = console(&socket, &["server", "clear-caches"]).await;
    assert_eq!(code, 0, "{out}");
    let backup = tempfile::tempdir().unwrap();
    let target = backup.path().join("copy");
    let (code, out, err) = console(&socket, &["server", "backup", target.to_str().unwrap()]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("Backup written"), "{out}");
    let (code, _, err) = console(&socket, &["server", "backup", target.to_str().unwrap()]).await;
    assert_eq!(code, 1, "an existing directory is refused");
    assert!(err.contains("exists already"), "{err}");
    // What happens after the backup is not in it.
    send_text_id(&ts, &alice, &room, "t2", "after the backup").await;
    // The audit log, exported as JSON lines.
    let export = backup.path().join("audit.jsonl");
    let (code, _, _) = console(&socket, &["audit", "export", export.to_str().unwrap()]).await;
    assert_eq!(code, 0);
    let lines: Vec<Value> = std::fs::read_to_string(&export)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines.len(), 4, "{lines:?}");
    assert_eq!(lines[0]["action"], "server config");
    assert!(
        lines[2]["action"]
            .as_str()
            .unwrap()
            .starts_with("server backup")
    );
    assert!(
        lines[3]["outcome"]
            .as_str()
            .unwrap()
            .contains("exists already")
    );
    ts.shutdown().await;

    // A fresh server on the copy has the account, the room up to the backup, and the media.
    let copy = target.clone();
    let restored = TestServer::start_with(move |cfg| {
        cfg.database_path = copy.clone();
    })
    .await;
    let alice = restored.login("alice", "alice-password").await;
    let messages = expect_ok(
        restored
            .get(
                &room_path(&room, "/messages?dir=b&limit=20"),
                alice.bearer(),
            )
            .await,
    )
    .to_string();
    assert!(
        messages.contains("before the backup") && messages.contains(&event),
        "{messages}"
    );
    assert!(!messages.contains("after the backup"), "{messages}");
    let media = restored
        .client()
        .get(restored.url(&format!(
            "/_matrix/client/v1/media/download/{}",
            mxc.trim_start_matches("mxc://")
        )))
        .bearer_auth(&alice.access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(media.status(), StatusCode::OK);
    assert_eq!(media.text().await.unwrap(), "media bytes");
    restored.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_notices_reach_users_who_cannot_answer_or_escape_them() {
    let ts = TestServer::start_open().await;
    let socket = ts.config().database_path.join("admin.sock");
    ts.register_open("it", "it-password").await;
    let bob = ts.register_open("bob", "bob-password").await;
    let carol = ts.register_open("carol", "carol-password").await;

    let (code, out, err) = console(
        &socket,
        &[
            "server",
            "notice",
            "--to",
            "bob",
            "Maintenance",
            "at",
            "6pm",
        ],
    )
    .await;
    assert_eq!(code, 0, "{out}{err}");
    let sync = expect_ok(
        ts.get("/_matrix/client/v3/sync?timeout=0", bob.bearer())
            .await,
    );
    let invites = sync["rooms"]["invite"].as_object().expect("an invite");
    let (room, _) = invites
        .iter()
        .find(|(_, room)| room.to_string().contains("Server notices"))
        .unwrap_or_else(|| panic!("no notices room: {sync}"));
    let room = room.clone();
    expect_ok(
        ts.post(&room_path(&room, "/join"), bob.bearer(), &json!({}))
            .await,
    );
    let history = expect_ok(
        ts.get(&room_path(&room, "/messages?dir=b&limit=10"), bob.bearer())
            .await,
    );
    let notice = history["chunk"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["content"]["msgtype"] == "m.server_notice")
        .unwrap_or_else(|| panic!("{history}"));
    assert_eq!(notice["sender"], BOT);
    assert_eq!(notice["content"]["body"], "Maintenance at 6pm");
    let tags = expect_ok(
        ts.get(
            &format!(
                "/_matrix/client/v3/user/{}/rooms/{}/tags",
                enc(&bob.user_id),
                enc(&room)
            ),
            bob.bearer(),
        )
        .await,
    );
    assert!(tags["tags"]["m.server_notice"].is_object(), "{tags}");
    // The user cannot write back.
    let reply = send_text(&ts, &bob, &room, "r1", "no thanks").await;
    assert_errcode(&reply, StatusCode::FORBIDDEN, "M_FORBIDDEN");

    // Leaving does not stop the next notice: the same room invites again.
    expect_ok(
        ts.post(&room_path(&room, "/leave"), bob.bearer(), &json!({}))
            .await,
    );
    let (code, _, _) = console(
        &socket,
        &["server", "notice", "--to", "@bob:localhost", "Again"],
    )
    .await;
    assert_eq!(code, 0);
    let sync = expect_ok(
        ts.get("/_matrix/client/v3/sync?timeout=0", bob.bearer())
            .await,
    );
    assert!(sync["rooms"]["invite"][&room].is_object(), "{sync}");

    // To everyone: each active account gets its own room.
    let (code, out, _) = console(&socket, &["server", "notice", "Hello", "all"]).await;
    assert_eq!(code, 0);
    assert!(out.contains("Sent the notice to 3 user(s)"), "{out}");
    let sync = expect_ok(
        ts.get("/_matrix/client/v3/sync?timeout=0", carol.bearer())
            .await,
    );
    assert!(sync.to_string().contains("Server notices"), "{sync}");
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspended_user_reads_but_cannot_send() {
    let ts = TestServer::start_open().await;
    let socket = ts.config().database_path.join("admin.sock");
    let alice = ts.register_open("alice", "alice-password").await;
    let sam = ts.register_open("sam", "sam-password").await;
    let room = create_room(&ts, &alice, json!({ "preset": "public_chat" })).await;
    expect_ok(
        ts.post(&room_path(&room, "/join"), sam.bearer(), &json!({}))
            .await,
    );
    let own = send_text_id(&ts, &sam, &room, "t1", "before").await;
    let other = create_room(&ts, &alice, json!({ "preset": "public_chat" })).await;

    let (code, out, err) = console(&socket, &["users", "suspend", "sam"]).await;
    assert_eq!(code, 0, "{out}{err}");
    let refused = [
        send_text(&ts, &sam, &room, "t2", "after").await,
        ts.post("/_matrix/client/v3/createRoom", sam.bearer(), &json!({}))
            .await,
        ts.post(&room_path(&other, "/join"), sam.bearer(), &json!({}))
            .await,
        ts.put(
            "/_matrix/client/v3/profile/@sam:localhost/displayname",
            sam.bearer(),
            &json!({ "displayname": "SAM!!!" }),
        )
        .await,
        ts.request_raw(
            reqwest::Method::POST,
            "/_matrix/media/v3/upload",
            sam.bearer(),
            "text/plain",
            "x",
        )
        .await,
    ];
    for resp in &refused {
        assert_errcode(resp, StatusCode::FORBIDDEN, "M_USER_SUSPENDED");
    }
    // Reading, removing their own message and leaving still work.
    expect_ok(
        ts.get(&room_path(&room, "/messages?dir=b"), sam.bearer())
            .await,
    );
    expect_ok(
        ts.put(
            &room_path(&room, &format!("/redact/{}/r1", enc(&own))),
            sam.bearer(),
            &json!({}),
        )
        .await,
    );
    let theirs = send_text_id(&ts, &alice, &room, "t3", "alice's").await;
    let resp = ts
        .put(
            &room_path(&room, &format!("/redact/{}/r2", enc(&theirs))),
            sam.bearer(),
            &json!({}),
        )
        .await;
    // Others' messages stay out of reach (here already by power level).
    assert_eq!(resp.0, StatusCode::FORBIDDEN, "{}", resp.1);
    expect_ok(
        ts.post(&room_path(&room, "/leave"), sam.bearer(), &json!({}))
            .await,
    );

    let (code, _, _) = console(&socket, &["users", "unsuspend", "sam"]).await;
    assert_eq!(code, 0);
    expect_ok(
        ts.post(&room_path(&other, "/join"), sam.bearer(), &json!({}))
            .await,
    );
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shut_down_room_loses_its_local_members_and_stays_closed() {
    let ts = TestServer::start_open().await;
    let socket = ts.config().database_path.join("admin.sock");
    ts.register_open("it", "it-password").await;
    let alice = ts.register_open("alice", "alice-password").await;
    let bob = ts.register_open("bob", "bob-password").await;
    let carol = ts.register_open("carol", "carol-password").await;
    let room = create_room(
        &ts,
        &alice,
        json!({ "preset": "public_chat", "room_alias_name": "bad", "invite": [carol.user_id] }),
    )
    .await;
    expect_ok(
        ts.put(
            &format!("/_matrix/client/v3/directory/list/room/{}", enc(&room)),
            alice.bearer(),
            &json!({ "visibility": "public" }),
        )
        .await,
    );
    expect_ok(
        ts.post(&room_path(&room, "/join"), bob.bearer(), &json!({}))
            .await,
    );

    // block: members stay, nobody new gets in.
    let (code, out, err) = console(&socket, &["rooms", "block", "#bad:localhost"]).await;
    assert_eq!(code, 0, "{out}{err}");
    let dave = ts.register_open("dave", "dave-password").await;
    let resp = ts
        .post(&room_path(&room, "/join"), dave.bearer(), &json!({}))
        .await;
    assert_errcode(&resp, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    expect_ok(
        ts.get(&room_path(&room, "/joined_members"), bob.bearer())
            .await,
    );
    let directory = expect_ok(ts.get("/_matrix/client/v3/publicRooms", None).await);
    assert!(!directory.to_string().contains(&room), "{directory}");
    let (code, _, _) = console(&socket, &["rooms", "unblock", &room]).await;
    assert_eq!(code, 0);
    expect_ok(
        ts.post(&room_path(&room, "/join"), dave.bearer(), &json!({}))
            .await,
    );

    // shutdown: every local member (and invitee) leaves, with the message as the reason.
    let (code, out, err) = console(
        &socket,
        &["rooms", "shutdown", &room, "--message", "Closed for review"],
    )
    .await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("4 local member(s) removed"), "{out}");
    for user in [&alice, &bob, &dave] {
        let rooms = expect_ok(
            ts.get("/_matrix/client/v3/joined_rooms", user.bearer())
                .await,
        );
        assert!(!rooms.to_string().contains(&room), "{rooms}");
    }
    let sync = expect_ok(
        ts.get("/_matrix/client/v3/sync?timeout=0", carol.bearer())
            .await,
    );
    assert!(sync["rooms"]["invite"].get(&room).is_none(), "{sync}");
    let resp = ts
        .post(&room_path(&room, "/join"), alice.bearer(), &json!({}))
        .await;
    assert_errcode(&resp, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    let history = expect_ok(
        ts.get(&room_path(&room, "/messages?dir=b&limit=5"), bob.bearer())
            .await,
    );
    assert!(
        history.to_string().contains("Closed for review"),
        "{history}"
    );
    let (_, info, _) = console(&socket, &["rooms", "info", &room]).await;
    assert!(
        info.lines()
            .any(|l| l.starts_with("blocked") && l.ends_with("yes")),
        "{info}"
    );
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_is_inspected_quarantined_deleted_and_counted() {
    let ts = TestServer::start_open().await;
    let socket = ts.config().database_path.join("admin.sock");
    ts.register_open("it", "it-password").await;
    let ann = ts.register_open("ann", "ann-password").await;
    let bob = ts.register_open("bob", "bob-password").await;
    let upload = |who: &Session, bytes: &'static str| {
        let ts = &ts;
        let token = who.access_token.clone();
        async move {
            let body = expect_ok(
                ts.request_raw(
                    reqwest::Method::POST,
                    "/_matrix/media/v3/upload?filename=f.txt",
                    Some(&token),
                    "text/plain",
                    bytes,
                )
                .await,
            );
            body["content_uri"].as_str().unwrap().to_owned()
        }
    };
    let download = |mxc: &str| {
        ts.client()
            .get(ts.url(&format!(
                "/_matrix/client/v1/media/download/{}",
                mxc.trim_start_matches("mxc://")
            )))
            .bearer_auth(&ann.access_token)
            .send()
    };
    let first = upload(&ann, "ann's first file").await;
    let second = upload(&ann, "ann's second").await;
    let bobs = upload(&bob, "bob's big file, much bigger than ann's").await;

    let (code, out, _) = console(&socket, &["media", "info", &first]).await;
    assert_eq!(code, 0);
    assert!(
        out.contains("@ann:localhost") && out.contains("text/plain"),
        "{out}"
    );
    let (_, usage, _) = console(&socket, &["media", "usage"]).await;
    let ann_at = usage.find("@ann:localhost").unwrap();
    let bob_at = usage.find("@bob:localhost").unwrap();
    assert!(bob_at < ann_at, "largest first: {usage}");

    let (code, _, _) = console(&socket, &["media", "quarantine", &first]).await;
    assert_eq!(code, 0);
    assert_eq!(
        download(&first).await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(download(&second).await.unwrap().status(), StatusCode::OK);
    let (_, out, _) = console(&socket, &["media", "quarantine-user", "bob"]).await;
    assert!(out.contains("Quarantined 1 upload(s)"), "{out}");
    assert_eq!(
        download(&bobs).await.unwrap().status(),
        StatusCode::NOT_FOUND
    );

    let (code, _, _) = console(&socket, &["media", "delete", &second]).await;
    assert_eq!(code, 0);
    let (code, _, err) = console(&socket, &["media", "info", &second]).await;
    assert_eq!(code, 1);
    assert!(err.contains("There is no"), "{err}");
    let (_, out, _) = console(&socket, &["media", "delete-from-user", "ann"]).await;
    assert!(out.contains("Deleted 1 upload(s)"), "{out}");
    // Nothing is older than a day; everything is older than a date in the future.
    let (_, out, _) = console(&socket, &["media", "delete-older-than", "1d"]).await;
    assert!(out.contains("Deleted 0 upload(s)"), "{out}");
    let (_, out, _) = console(&socket, &["media", "delete-older-than", "2999-01-01"]).await;
    assert!(out.contains("Deleted 1 upload(s)"), "{out}");
    let (code, _, err) = console(&socket, &["media", "delete", "mxc://elsewhere.org/abc"]).await;
    assert_eq!(code, 1);
    assert!(err.contains("not stored here"), "{err}");
    ts.shutdown().await;
}
