//! The one catalogue of column families. Each entry documents its key layout (parts joined by
//! `0xFF`, integers big-endian; see [`super::codec`]) and what its value holds. A service owns the
//! trees of its area; nothing else writes them.

/// A column family and what it stores.
pub struct TreeSpec {
    pub name: &'static str,
    /// Small, hot trees (tokens, devices) benefit from bloom filters on point lookups.
    pub point_lookups: bool,
    /// Values are big-endian i64 counters changed by [`super::Batch::add`]: RocksDB sums the
    /// additions itself, so writers in different rooms update one counter without a
    /// read-modify-write race.
    pub counters: bool,
}

const fn tree(name: &'static str, point_lookups: bool) -> TreeSpec {
    TreeSpec {
        name,
        point_lookups,
        counters: false,
    }
}

const fn counter_tree(name: &'static str) -> TreeSpec {
    TreeSpec {
        name,
        point_lookups: true,
        counters: true,
    }
}

/// Every column family the server opens.
pub const TREES: &[TreeSpec] = &[
    // Named singletons: `schema_version` (u64), `counter` (u64, the global stream ordering),
    // `admin_bot` (UserId of the bot this server created), `admin_room` (RoomId),
    // `signing_key_der` (PKCS#8) and `signing_key_version` (the current signing key),
    // `signing_keys_old` (JSON list of replaced keys with their `expired_ts`).
    tree("global", true),
    // Other servers' verify keys, as fetched and checked. Key: ServerName, key ID
    // (`ed25519:…`). Value: JSON `{"key": unpadded base64, "valid_until_ts": ms}`.
    tree("serverkeyid_verifykey", true),
    // Key: ServerName. Value: the server's latest key document (`/_matrix/key/v2/server`) as
    // it signed it, checked; served again as this server's notary answer.
    tree("servername_keydocument", true),
    // The federation queues. Key: destination ServerName, queue position (u64, from the
    // global counter). Value: EventId of a PDU to send there; removed once the destination
    // acknowledged the transaction that carried it.
    tree("servernamecount_eventid", false),
    // Key: ServerName, queue position (u64). Value: an EDU's JSON that must reach the server
    // (a to-device message, a device list update); removed once the server acknowledges
    // the transaction that carried it. Typing and receipts stay in memory instead.
    tree("servernamecount_edu", false),
    // Application services registered from the admin room. Key: the service's ID. Value:
    // its registration YAML, as given (those from files are read from the files at start).
    tree("appserviceid_registration", true),
    // The application services' queues. Key: the service's ID, queue position (u64, from
    // the global counter). Value: EventId of an event to send it; removed once the service
    // acknowledged the transaction that carried it.
    tree("appserviceidcount_eventid", false),
    // Key: SHA-256 of an OpenID token. Value: JSON `{"user_id", "expires_ms"}` (see
    // `service::openid`; valid an hour, swept once many have expired).
    tree("tokenhash_openid", true),
    // Key: UserId. Value: argon2id PHC string, or empty once the account is deactivated (the
    // entry stays so the user ID is never handed out again).
    tree("userid_password", true),
    // Key: UserId. Value: empty. Presence means the user is a server administrator.
    tree("userid_admin", true),
    // Key: UserId. Value: u64 milliseconds since the epoch when the account was created
    // (accounts from before this was recorded have none).
    tree("userid_createdts", true),
    // Key: UserId. Value: empty. Presence means an administrator locked the account.
    tree("userid_locked", true),
    // Key: UserId. Value: empty. Presence means an administrator suspended the account.
    tree("userid_suspended", true),
    // Key: UserId. Value: empty. Presence means the account was deactivated with erasure:
    // its messages were redacted (Synapse's "erased" users).
    tree("userid_erased", true),
    // Key: RoomId. Value: empty. Presence means administrators blocked the room: no local
    // user may join, be invited or knock.
    tree("roomid_blocked", true),
    // Key: UserId. Value: RoomId of the user's server notices room (owned by the bot).
    tree("userid_noticeroomid", true),
    // Key: u64 report ID (big-endian, counting from 1). Value: JSON `reports::Report`.
    tree("reportid_report", true),
    // Key: u64 entry ID (big-endian, counting from 1). Value: JSON `admin::audit::Entry`.
    // Append-only: the audit log of administrative actions.
    tree("auditid_entry", false),
    // Key: UserId, profile key (`displayname`, `avatar_url`, custom fields). Value: JSON value.
    tree("useridprofilekey_value", false),
    // Key: UserId, DeviceId. Value: JSON `StoredDevice` (display name, last seen).
    tree("userdeviceid_device", true),
    // Key: UserId, DeviceId. Value: SHA-256 of the device's current access token.
    tree("userdeviceid_tokenhash", true),
    // Key: SHA-256 of an access token. Value: JSON `TokenSession` (user, device, expiry).
    // Only hashes are stored, so a copy of the database yields no usable token.
    tree("tokenhash_session", true),
    // Key: UserId, DeviceId. Value: SHA-256 of the device's current refresh token.
    tree("userdeviceid_refreshhash", true),
    // Key: SHA-256 of a refresh token. Value: JSON `TokenSession` (no expiry).
    tree("refreshhash_session", true),
    // Key: UserId, RoomId (empty for global data), event type.
    // Value: u64 change count (big-endian) followed by the JSON content.
    tree("useridroomidtype_accountdata", true),
    // Key: UserId, u64 change count. Value: RoomId (or empty) 0xFF event type.
    // A change log so /sync can find account data changed since a token without a full scan;
    // the previous entry of a (room, type) is removed when it changes.
    tree("useridcount_accountdata", false),
    // Key: UserId, FilterId. Value: the filter's JSON.
    tree("useridfilterid_filter", true),
    // Key: registration token. Value: JSON `RegistrationTokenInfo` (uses allowed, completed).
    tree("registrationtoken_info", true),
    // --- Rooms. "Short" IDs are u64s handed out once per room, event and (type, state key) so
    // that indexes and state snapshots hold 8-byte integers instead of long strings.
    // Key: RoomId. Value: ShortRoomId (u64).
    tree("roomid_shortroomid", true),
    // Key: ShortRoomId (u64). Value: RoomId.
    tree("shortroomid_roomid", true),
    // Key: EventId. Value: ShortEventId (u64).
    tree("eventid_shorteventid", true),
    // Key: ShortEventId (u64). Value: EventId.
    tree("shorteventid_eventid", true),
    // Key: event type, state key. Value: ShortStateKey (u64).
    tree("statekey_shortstatekey", true),
    // Key: ShortStateKey (u64). Value: event type 0xFF state key.
    tree("shortstatekey_statekey", true),
    // Key: PduId = ShortRoomId (u64), count (u64): the room's timeline in stream order.
    // Value: the PDU as canonical JSON, with `event_id` added.
    tree("pduid_pdu", false),
    // Key: EventId. Value: PduId (16 bytes).
    tree("eventid_pduid", true),
    // Key: sender UserId, ShortRoomId (u64), count (u64), i.e. the sender then the PduId.
    // Value: empty. Events by sender, room by room: what erasing an account redacts.
    tree("senderpduid_empty", false),
    // Key: EventId. Value: the PDU as canonical JSON, with `event_id` added, of an event kept
    // outside the timeline: an outlier (an auth or state event fetched from another server),
    // a soft-failed or a rejected event. Clients never see these; the authorization rules
    // and state resolution do.
    tree("eventid_outlierpdu", true),
    // Key: EventId. Value: why it was rejected (UTF-8). Presence means the event failed the
    // authorization rules: events citing it are rejected too, and the state after it is the
    // state before it.
    tree("eventid_rejected", true),
    // Key: EventId. Value: empty. Presence means the event passed the checks against its
    // auth events and the state before it, but not against the room's current state when it
    // arrived: kept, never sent to clients, never a forward extremity.
    tree("eventid_softfailed", true),
    // Key: UserId, RoomId. Value: JSON `rooms::remote_invite::RemoteInvite`: an invite of a
    // local user to a room on another server that this server is not in (the event signed by
    // both servers, and the stripped state the inviting server sent), until joined or rejected.
    tree("useridroomid_remoteinvite", true),
    // Key: EventId of a redaction's target, EventId of the redaction. Value: empty. A redaction
    // received before its target; applied (if it may be) when the target is placed.
    tree("eventid_pendingredaction", false),
    // Key: stage ID (u64, one per room state being taken in), EventId. Value: the event's
    // checked canonical JSON. A room's state from another server (`send_join`, `/state`)
    // waits here, read from the answer one event at a time, until it is stored as outliers
    // in auth order; emptied then, and at start after an interruption.
    tree("stageid_eventid_pdu", false),
    // Key: ShortEventId (u64). Value: ShortStateHash (u64) of the room state *after* the event.
    tree("shorteventid_shortstatehash", true),
    // Key: ShortStateHash (u64). Value: a state delta: parent ShortStateHash (u64, 0 = none),
    // chain depth (u64), number of added entries (u64), then added and removed entries, each
    // ShortStateKey (u64) + ShortEventId (u64). Snapshots are deltas against their parent, with
    // a full snapshot every few dozen steps so reading one never walks a long chain.
    tree("shortstatehash_statediff", false),
    // Key: RoomId. Value: ShortStateHash (u64) of the room's current state.
    tree("roomid_shortstatehash", true),
    // Key: RoomId. Value: EventIds joined by 0xFF. The room's forward extremities, in one value
    // so that an append is a point read and write, not a scan over the tombstones of every
    // earlier leaf (schema version 1 had one key per leaf).
    tree("roomid_pduleaves", true),
    // Key: RoomId. Value: the room version string.
    tree("roomid_roomversion", true),
    // Key: UserId, RoomId. Value: the user's membership (`join`, `invite`, `leave`, `ban`,
    // `knock`) from the room's current state; forgotten rooms are removed.
    tree("userroomid_membership", false),
    // Key: RoomId, UserId. Value: membership, as above.
    tree("roomuserid_membership", false),
    // Key: UserId, DeviceId, transaction ID. Value: EventId. Makes client sends idempotent.
    tree("userdevicetxnid_eventid", true),
    // Key: EventId. Value: DeviceId 0xFF transaction ID, for `unsigned.transaction_id`.
    tree("eventid_devicetxnid", true),
    // Key: room alias. Value: RoomId 0xFF UserId of the alias's creator.
    tree("alias_roomid", true),
    // Key: RoomId. Value: empty. Rooms published in the public room directory.
    tree("publicroomids", false),
    // Key: EventId of the related-to event, u64 count of the relating event.
    // Value: rel_type 0xFF event type 0xFF EventId of the relating event (`m.relates_to`).
    tree("relatestoeventid_relation", false),
    // Key: EventId of an event that has (or had) relations. Value: empty. A point lookup
    // (with a bloom filter) spares rendering an event without relations a prefix scan.
    tree("eventid_hasrelations", true),
    // Key: RoomId, EventId of a thread root. Value: empty.
    tree("roomid_threadroot", false),
    // Key: lower-cased word, ShortRoomId (u64), count (u64) of an event containing it (message
    // body, room name or topic). Value: empty. The full-text index behind /search.
    tree("tokenshortroomidcount_empty", false),
    // --- Sync. Key: UserId, u64 count. Value: RoomId. Per user, the rooms that changed for
    // them (an event they may see, or their membership), at the count of the latest change, so
    // an incremental /sync reads only rooms that changed, however many the user is in.
    tree("useridcount_roomid", false),
    // Key: UserId, RoomId. Value: u64 count of the room's entry in `useridcount_roomid`.
    tree("useridroomid_count", true),
    // Key: RoomId. Value: u64 count of the room's latest message-like event (sliding sync's
    // `bump_stamp`, which orders room lists by recency).
    tree("roomid_bumpcount", true),
    // Key: UserId, u64 (u64::MAX - stamp), RoomId. Value: membership (`join`, `invite` or
    // `knock`). The user's room list, newest first: a joined room at its `roomid_bumpcount`, an
    // invite or knock at its membership event; rooms left have no entry. Sliding sync reads a
    // list's window from the front instead of reading every room.
    tree("useridstamproomid_membership", false),
    // Key: UserId, RoomId. Value: u64 stamp of the room's entry above, then its membership
    // (absent in values written before 2026-11-29's third session).
    tree("useridroomid_stamp", true),
    // Key: UserId, membership. Value: i64 counter (see `counter_tree`) of the user's entries
    // above with that membership, so a list's `count` needs no scan.
    counter_tree("useridmembership_roomcount"),
    // Key: UserId, DeviceId, RoomId, member UserId. Value: ShortEventId (u64) of the member's
    // membership event last sent to the device by a lazy-loading sync, then the position (u64)
    // of the answer that sent it.
    tree("userdeviceroommember_lazysent", true),
    // Key: RoomId, u64 count. Value: JSON receipt {user_id, receipt_type, event_id, ts, thread_id}.
    tree("roomidcount_receipt", false),
    // Key: RoomId, UserId, receipt type, thread. Value: u64 count of the receipt's entry above.
    tree("roomiduserreceipt_count", true),
    // --- Presence. Key: UserId. Value: JSON `StoredPresence` (state, status, last active, count).
    tree("userid_presence", true),
    // Key: u64 count. Value: UserId. The log of presence changes /sync reads since a position;
    // a user's previous entry is removed when they change again.
    tree("count_presenceuserid", false),
    // --- Push. Key: UserId, RoomId, u64 count of an event that notifies the user.
    // Value: 1 if it highlights, else 0. Unread counts are the entries after the user's receipt.
    tree("useridroomidcount_notification", false),
    // Key: UserId, u64 count. Value: JSON {room_id, event_id, actions, ts} for /notifications.
    tree("useridcount_notification", false),
    // Key: UserId, app ID, push key. Value: JSON {pusher, device_id, pushkey_ts}: where the
    // user's device wants notifications sent (`service::pushers`).
    tree("useridpushkey_pusher", true),
    // Key: app ID, push key, UserId. Value: empty. Who holds a push key, so registering it
    // without `append` takes it from other users.
    tree("apppushkey_userid", false),
    // Key: RoomId, alias. Value: empty. Local aliases of a room.
    tree("roomid_alias", false),
    // --- End-to-end encryption. Key: UserId, DeviceId. Value: the device's identity keys
    // (JSON as uploaded, with cross-signing signatures merged in).
    tree("userdeviceid_devicekeys", true),
    // Key: UserId, DeviceId, key ID (`algorithm:id`). Value: the one-time key (JSON). Claiming
    // a key deletes it, so each is handed out once.
    tree("userdevicekeyid_onetimekey", false),
    // Key: UserId, DeviceId, algorithm. Value: JSON {key_id, key, used}: the fallback key,
    // handed out (and marked used) when no one-time key is left.
    tree("userdevicealgorithm_fallbackkey", true),
    // Key: UserId, `master` | `self_signing` | `user_signing`. Value: the cross-signing key
    // (JSON), with the owner's signatures.
    tree("useridkind_crosssigningkey", true),
    // Key: target UserId, signer UserId. Value: JSON {key ID: signature}: signatures by the
    // signer's user-signing key on the target's master key, shown only to the signer.
    tree("targetsigner_signatures", true),
    // Key: observer UserId, u64 count. Value: `c` (changed) or `l` (left) then a UserId: whose
    // devices or keys the observer must re-fetch or may forget (`device_lists`).
    tree("useridcount_devicelistchange", false),
    // Key: remote UserId. Value: JSON {stream_id, devices: {DeviceId: keys}, master_key,
    // self_signing_key}: a remote user's devices as their server last told us, kept while one
    // of our users shares a room with them (`keys::remote_devices`).
    tree("userid_remotedevicelist", true),
    // Key: local UserId, ServerName (empty for "any"). Value: u64 big-endian: the stream ID
    // of the user's last device update sent to that server (the next one's `prev_id`); with
    // the empty name, the user's latest update (what `user/devices` answers).
    tree("userserver_devicestreamid", true),
    // Key: UserId, DeviceId, u64 count. Value: JSON {sender, type, content}: a to-device
    // message waiting for the device; deleted once a sync acknowledges it.
    tree("userdevicecount_todevice", false),
    // Key: sender UserId, sender DeviceId, transaction ID. Value: empty. Makes
    // `/sendToDevice` idempotent.
    tree("userdevicetxnid_todevice", true),
    // Key: UserId, u64 version. Value: JSON `BackupVersion` {algorithm, auth_data, etag, count}.
    tree("useridversion_backup", true),
    // Key: UserId, u64 version, RoomId, session ID. Value: the backed-up session (JSON
    // KeyBackupData: first_message_index, forwarded_count, is_verified, session_data).
    tree("useridversionroomsession_backupkey", false),
    // --- Media. Key: ServerName, media ID. Value: JSON `MediaMeta` (content hash, size, type,
    // file name, uploader, creation time, quarantined and by whom, protected from quarantine,
    // pending). Other servers' media cached here is stored under their ServerName. The bytes
    // live on disk under the media directory, named by their SHA-256.
    tree("mediaid_meta", true),
    // Key: hex SHA-256, ServerName, media ID, thumbnail spec (empty for the original). Value:
    // empty. Who uses a file, so deleting media removes the file only when nothing else does.
    tree("sha256mediaid_ref", false),
    // Key: uploader UserId, ServerName, media ID. Value: empty. Media by uploader (pending
    // upload limits, listing, quarantine and deletion by user).
    tree("useridmediaid_empty", false),
    // Key: ServerName, media ID, thumbnail spec (`WxH-method`). Value: JSON `ThumbnailMeta`.
    tree("mediaidthumbnail_meta", true),
    // Key: URL. Value: JSON {ts, preview}: recent URL previews, reused for an hour.
    tree("url_preview", true),
];
