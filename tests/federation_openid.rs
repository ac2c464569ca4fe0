//! OpenID for widgets and integrations: a client gets a token for its user, and a third
//! party learns the user ID by showing the token to the server's federation listener
//! (`/_matrix/federation/v1/openid/userinfo`, unsigned, as integration managers call it).

mod common;

use common::federation::*;
use common::*;
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_openid_token_proves_its_user_to_a_third_party() {
    let (ts, _pki) = conclave_peer(106).await;
    let alice = ts.register_open("alice", "alice-password").await;
    let bob = ts.register_open("bob", "bob-password").await;
    let path = format!(
        "/_matrix/client/v3/user/{}/openid/request_token",
        enc(&alice.user_id)
    );
    let token = expect_ok(ts.post(&path, alice.bearer(), &json!({})).await);
    assert_eq!(token["token_type"], "Bearer", "{token}");
    assert_eq!(
        token["matrix_server_name"],
        ts.config().server_name.as_str()
    );
    assert_eq!(token["expires_in"], 3600);
    // Nobody gets a token for someone else.
    let refused = ts.post(&path, bob.bearer(), &json!({})).await;
    assert_errcode(&refused, StatusCode::FORBIDDEN, "M_FORBIDDEN");

    let userinfo = |token: &str| {
        federation_client().get(format!(
            "https://{}/_matrix/federation/v1/openid/userinfo?access_token={}",
            ts.config().server_name,
            enc(token)
        ))
    };
    let info = json_of(userinfo(token["access_token"].as_str().unwrap())).await;
    assert_eq!(info["sub"], alice.user_id.as_str(), "{info}");
    let unknown = userinfo("not-a-token").send().await.unwrap();
    assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);
    let body: serde_json::Value = unknown.json().await.unwrap();
    assert_eq!(body["errcode"], "M_UNKNOWN_TOKEN", "{body}");
    ts.shutdown().await;
}
