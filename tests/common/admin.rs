//! The admin room as an administrator drives it: commands sent as messages, answered by the
//! server's bot as replies.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::*;

pub const BOT: &str = "@conclave:localhost";

/// Resolves `#admins:localhost`.
pub async fn admin_room(ts: &TestServer) -> String {
    let alias = expect_ok(
        ts.get(
            &format!(
                "/_matrix/client/v3/directory/room/{}",
                enc("#admins:localhost")
            ),
            None,
        )
        .await,
    );
    alias["room_id"].as_str().expect("room_id").to_owned()
}

/// Sends `text` to the room and waits for the bot's reply to it; returns the reply's content.
pub async fn command(ts: &TestServer, who: &Session, room: &str, text: &str) -> Value {
    let txn = format!("cmd{}", rand_suffix());
    let event_id = send_text_id(ts, who, room, &txn, text).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let history = expect_ok(
            ts.get(&room_path(room, "/messages?dir=b&limit=30"), who.bearer())
                .await,
        );
        let reply = history["chunk"].as_array().unwrap().iter().find(|event| {
            event["sender"] == BOT
                && event["content"]["m.relates_to"]["m.in_reply_to"]["event_id"]
                    == event_id.as_str()
        });
        if let Some(reply) = reply {
            return reply["content"].clone();
        }
        assert!(
            Instant::now() < deadline,
            "no answer to {text:?}: {history}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

pub fn body(reply: &Value) -> &str {
    reply["body"].as_str().unwrap_or_default()
}
