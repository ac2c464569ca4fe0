//! The one catalogue of column families. Each entry documents its key layout (parts joined by
//! `0xFF`, integers big-endian; see [`super::codec`]) and what its value holds. A service owns the
//! trees of its area; nothing else writes them.

/// A column family and what it stores.
pub struct TreeSpec {
    pub name: &'static str,
    /// Small, hot trees (tokens, devices) benefit from bloom filters on point lookups.
    pub point_lookups: bool,
}

const fn tree(name: &'static str, point_lookups: bool) -> TreeSpec {
    TreeSpec {
        name,
        point_lookups,
    }
}

/// Every column family the server opens.
pub const TREES: &[TreeSpec] = &[
    // Named singletons: `schema_version` (u64), `counter` (u64, the global stream ordering).
    tree("global", true),
    // Key: UserId. Value: argon2id PHC string, or empty once the account is deactivated (the
    // entry stays so the user ID is never handed out again).
    tree("userid_password", true),
    // Key: UserId. Value: empty. Presence means the user is a server administrator.
    tree("userid_admin", true),
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
];
