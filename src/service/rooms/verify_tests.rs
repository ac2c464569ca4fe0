//! Every PDU this server stores must pass the checks a remote server runs on it: the format
//! for its room version, the signature by this server's key, the content hash (or, for a
//! redacted event, only the signature) and an event ID that matches the room version's rule.
//! These are ruma's own verification functions — the ones other Rust servers use, and the
//! same algorithms Synapse runs.

use ruma::RoomVersionId;
use ruma::events::TimelineEventType;
use ruma::room_version_rules::{EventIdFormatVersion, StateResolutionVersion};
use ruma::signatures::{Verified, reference_hash, verify_event};
use ruma::state_res::check_pdu_format;
use serde_json::json;

use super::pdu::PduEvent;
use super::redaction::redaction_event;
use super::test_room::{self, TestRoom};
use super::wire::wire_object;
use crate::service::Services;
use crate::service::rooms::PduBuilder;

const VERSIONS: [RoomVersionId; 12] = [
    RoomVersionId::V1,
    RoomVersionId::V2,
    RoomVersionId::V3,
    RoomVersionId::V4,
    RoomVersionId::V5,
    RoomVersionId::V6,
    RoomVersionId::V7,
    RoomVersionId::V8,
    RoomVersionId::V9,
    RoomVersionId::V10,
    RoomVersionId::V11,
    RoomVersionId::V12,
];

/// A room of every version with the kinds of event the server makes — create, joins, power
/// levels, state on two concurrent branches, the merge, messages, a redaction and the event
/// it redacted — then every stored PDU checked as a remote server would.
#[tokio::test]
async fn every_stored_pdu_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let services = Services::for_tests(dir.path());
    let rooms = &services.rooms;
    let alice = test_room::user(&services, "alice");

    for version in VERSIONS {
        let rules = version.rules().unwrap();
        let TestRoom {
            room_id,
            guard,
            head,
        } = test_room::alices_room(&services, &version).await;
        let send = |builder| {
            rooms
                .build_and_append(builder, &alice, &room_id, &guard)
                .unwrap()
        };
        send(PduBuilder::state(
            TimelineEventType::RoomTopic,
            "",
            json!({ "topic": "branch A" }),
        ));
        // A second branch from the same parent, merged by the next event. Room version 1
        // resolves forks with the first state resolution algorithm, which is not implemented.
        let parent = if rules.state_res == StateResolutionVersion::V1 {
            rooms.forward_extremities(&room_id).unwrap()
        } else {
            vec![head]
        };
        rooms
            .build_and_append_after(
                PduBuilder::state(
                    TimelineEventType::RoomName,
                    "",
                    json!({ "name": "branch B" }),
                ),
                &alice,
                &room_id,
                &guard,
                parent,
            )
            .unwrap();
        let message = send(PduBuilder::timeline(
            TimelineEventType::RoomMessage,
            json!({ "msgtype": "m.text", "body": "to be redacted" }),
        ));
        send(PduBuilder::timeline(
            TimelineEventType::RoomMessage,
            json!({ "msgtype": "m.text", "body": "kept" }),
        ));
        let redaction = send(redaction_event(&rules, &message, Some("test")));
        let because = rooms.redacted_because(&room_id, &redaction).unwrap();
        let purge = rooms.apply_redaction(&room_id, &message, because).unwrap();
        services.engine.purge_old_versions(&purge).unwrap();
        guard.release().await;
    }

    let keys = services
        .rooms
        .keys
        .public_key_map(services.server_name(), 0);
    let mut checked = 0;
    let mut redacted = 0;
    for entry in rooms.pduid_pdu.iter_from(&[], rocksdb::Direction::Forward) {
        let (_, stored) = entry.unwrap();
        let pdu = PduEvent::from_json(&stored).unwrap();
        let room_id = pdu.room_id.clone().unwrap_or_else(|| {
            ruma::RoomId::parse(pdu.event_id.as_str().replacen('$', "!", 1)).unwrap()
        });
        let version = rooms.room_version(&room_id).unwrap();
        let rules = version.rules().unwrap();
        let what = format!("{} ({}) in a v{version} room", pdu.event_id, pdu.kind);
        let wire = wire_object(&stored, &rules).unwrap();

        check_pdu_format(&wire, &rules.event_format).unwrap_or_else(|e| panic!("{what}: {e}"));
        let was_redacted = serde_json::from_slice::<serde_json::Value>(&stored).unwrap()
            ["unsigned"]["redacted_because"]
            .is_object();
        let expected = if was_redacted {
            redacted += 1;
            Verified::Signatures
        } else {
            Verified::All
        };
        let verified = verify_event(&keys, &wire, &rules).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(verified, expected, "{what}");

        match rules.event_id_format {
            EventIdFormatVersion::V1 => {
                assert_eq!(
                    wire["event_id"],
                    ruma::CanonicalJsonValue::String(pdu.event_id.to_string()),
                    "{what}"
                );
                assert_eq!(
                    pdu.event_id.server_name(),
                    Some(services.server_name()),
                    "{what}"
                );
            }
            _ => {
                let hash = reference_hash(&wire, &rules).unwrap();
                assert_eq!(format!("${hash}"), pdu.event_id.as_str(), "{what}");
                // The stored form keeps the ID beside the event; sent as it is, it would not
                // verify. (This is why `wire_object` exists.)
                let as_stored = serde_json::from_slice(&stored).unwrap();
                assert!(
                    verify_event(&keys, &as_stored, &rules).is_err(),
                    "{what}: verified with event_id inside"
                );
            }
        }
        checked += 1;
    }
    // Create, join, power levels, join rules, two branches' state, two messages and the
    // redaction.
    assert_eq!(checked, VERSIONS.len() * 9, "PDUs checked");
    assert_eq!(redacted, VERSIONS.len(), "one redacted event per room");
}
